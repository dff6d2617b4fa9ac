"""Speed and quality of the default alignment run (DAS on ``count`` of the seed-0 GRU), end to end.

    python benchmarks/alignment_speed.py [--parts pairs fresh default ceiling] [--minutes 5] [overrides]

Extra Hydra overrides go to every run (``hardware=gpu``: the same runs on a GPU).

Parts:

- ``pairs``: seconds to build 10,000 counterfactual pairs (MultiObject, Up-Down, ``count``), and to run
  the frozen model over their sources once (the activations every training step reuses).
- ``fresh``: ``git clone`` of this repository's committed state into a temporary folder, then the
  README's ``python run_alignment.py`` in it with an empty zoo: whole wall time (training the GRU
  included) and the validation IIA it writes. Target: under 3 minutes, IIA at least 0.95.
- ``default``: ``python run_alignment.py`` on the trained GRU (from the ``fresh`` part's zoo): time to
  the first validation IIA >= 0.95 (alignment training seconds, evaluations included; target 60 s),
  the best validation IIA, and how steady validation IIA is from one check to the next.
- ``ceiling``: the same with a ``--minutes`` budget and a schedule as long as the budget allows
  (``alignment.max_minutes``; no early stopping): the IIA the default settings reach with more time.

The published code on the same kind of machine: 55 s of set-up, 1.38 s per step, validation IIA
0.95 first after about 600 steps (14 minutes), 0.93-0.96 after 25 minutes.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from alignsearch.search.results import RunResults

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.95
QUIET = ["hardware.progress_bar=false"]


def bench_pairs(repeats: int = 5) -> None:
    from alignsearch.models import GRU
    from alignsearch.search.pairs import pair_tensors
    from alignsearch.seeding import generator
    from alignsearch.tasks import NumericTask, causal_model_for
    from alignsearch.tasks.counterfactual import make_pairs

    torch.set_num_threads(2)
    task = NumericTask(objects="multi", hold_outs=[4, 9, 14, 17])
    causal = causal_model_for(task, "updown")
    build, forward = [], []
    model = GRU(vocab_size=task.vocab.size, d_model=128).eval()
    for k in range(repeats):
        start = time.perf_counter()
        pairs = make_pairs(task, causal, "count", 10_000, generator(k, "bench"))
        build.append(time.perf_counter() - start)
        start = time.perf_counter()
        pair_tensors(pairs, model, "layer.0")
        forward.append(time.perf_counter() - start)
    print(
        f"pairs:   10,000 count pairs built in {statistics.median(build):.3f} s (median of {repeats}); "
        f"source activations of a GRU(128) in {statistics.median(forward):.3f} s"
    )


def run_alignment(cwd: Path, zoo: Path, overrides: list[str]) -> tuple[float, Path]:
    """Run ``run_alignment.py`` in ``cwd``; return its wall time and its run folder."""
    env = {
        **os.environ,
        "ALIGNSEARCH_ZOO": str(zoo),
        "WANDB_MODE": "offline",
        "PYTHONPATH": str(cwd / "src"),  # the clone's code, even where this checkout is installed editable
    }
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "run_alignment.py", *QUIET, *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"run_alignment.py {' '.join(overrides)} failed:\n{done.stderr[-3000:]}")
    results = sorted(cwd.glob("outputs/run_alignment/*/results.json"), key=lambda p: p.stat().st_mtime)
    return wall, results[-1].parent


def validation_curve(run_dir: Path) -> list[tuple[int, float, float]]:
    """(step, training seconds, validation IIA) at every evaluation during training."""
    rows = csv.DictReader(next(run_dir.glob("logs/version_*/metrics.csv")).open())
    return [
        (int(r["step"]), float(r["train_seconds"]), float(r["val/iia_mean"]))
        for r in rows
        if r.get("val/iia_mean") and r.get("train_seconds")
    ]


def describe(name: str, wall: float, run_dir: Path) -> None:
    results = RunResults.read(run_dir / "results.json")
    record = results.records[0]
    curve = validation_curve(run_dir)
    reached = next(((step, sec) for step, sec, iia in curve if iia >= TARGET), None)
    when = f"step {reached[0]} after {reached[1]:.1f} s" if reached else "never"
    start = next((i for i, (_, _, iia) in enumerate(curve) if iia >= TARGET), len(curve))
    changes = [b[2] - a[2] for a, b in zip(curve[start:], curve[start + 1 :], strict=False)]
    steady = (
        f"after it, {len(changes)} checks: mean |change| {statistics.fmean(abs(c) for c in changes):.4f}, "
        f"largest drop {-min(min(changes), 0):.4f}"
        if changes
        else "no checks after it"
    )
    print(
        f"{name}: whole command {wall:.1f} s; {results.steps} steps, {results.train_seconds:.1f} s "
        f"of alignment training; val IIA >= {TARGET} at {when}; best val IIA {record.iia:.3f} "
        f"(step {results.best_step}), held-out {record.iia_heldout:.3f}, test {record.iia_test:.3f}; "
        f"{steady}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", nargs="+", default=["pairs", "fresh", "default", "ceiling"])
    parser.add_argument("--minutes", type=float, default=5.0, help="budget of the ceiling run")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args()
    if "pairs" in args.parts:
        bench_pairs()
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "alignsearch"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        zoo = clone / "zoo"
        if "fresh" in args.parts:
            describe("fresh:   ", *run_alignment(clone, zoo, args.overrides))
        if "default" in args.parts:
            describe(  # a fresh run folder
                "default: ", *run_alignment(clone, zoo, ["alignment.name=das", *args.overrides])
            )
        if "ceiling" in args.parts:
            steps = int(
                args.minutes * 60 / 0.05
            )  # about 50 ms per step here: a schedule as long as the budget
            overrides = [
                f"alignment.max_minutes={args.minutes}",
                f"alignment.max_steps={steps}",
                "alignment.patience=100000",
                "alignment.stop_at=1.0",
            ]
            describe(
                f"ceiling ({args.minutes:g} min):", *run_alignment(clone, zoo, [*overrides, *args.overrides])
            )


if __name__ == "__main__":
    main()
