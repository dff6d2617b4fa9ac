"""What a scan costs against the same cells run one by one as ``run_alignment.py`` commands.

    python benchmarks/scan_speed.py [--layers 12] [--units 16] [--steps 50] [--rows 1000] [--commands 4]
                                    [--threads 2] [--batch-size N] [--out FOLDER]

A GPT-2-small-sized model with random weights, built from a ``transformers`` config (``--layers`` blocks,
width 768, 12 heads, GPT-2's vocabulary of 50257; nothing is downloaded) and saved with the toy counting
tokenizer (:mod:`alignsearch.text.toy`), and ``--rows`` rows of :func:`~alignsearch.text.toy.count_pair_rows`
as a pairs file: the model does not count, this is about cost. Then, as a user would run them (each a new
process, timed from start to exit):

* the scan: ``python -m alignsearch.scan model=lm ... n_units=16 scan.sites=[layer.0,...,layer.<L-1>]
  scan.positions=[last,-2,-3] scan.steps=50`` (``--layers`` x 3 cells); its ``scan.json`` says where
  its time went (``steps``: the training steps of every cell; ``states``: the frozen model's pass over
  the pairs for every site; ``cells``: the cells' runs);
* ``--commands`` of the same cells as ``python run_alignment.py ... layer=<i> position=<p>
  alignment.max_steps=50 alignment.controls=[random_subspace]`` (each cell's own command: the same
  settings, the same results), at layers spread evenly over the model and positions in turn; their mean
  wall time times the number of cells estimates the grid run command by command (``--commands 0``: none;
  a number at least the number of cells runs them all, nothing estimated).

Both use ``alignment.stop_at=null`` (exactly ``--steps`` steps a cell) and ``hardware.threads``. Prints a
table and writes ``scan_speed.json`` in ``--out`` (a new temporary folder by default, removed at the end
unless ``--out`` names one). The full size (12 x 3 cells, 50 steps) takes long on a laptop CPU: a GPU
(``--hardware gpu``) or a reduced size (``--layers 2 --rows 200 --steps 10 --commands 2``) for a check.

At the issue's size, ``--layers 12 --units 16 --steps 50 --rows 1000 --commands 4 --threads 2
--batch-size 16`` (a batch of 16 pairs a step: the config's 128 would take about 8 times the steps' time on
this CPU), on a 2-core machine with nothing else running: the scan of 36 cells 1551.9 s (1109.8 s in
training steps: 72%; the shared states 25.4 s, once), the four commands 105.0, 94.5, 87.4 and 77.8 s
(mean 91.2 s, 36% in steps), so the 36 cells command by command about 3283 s: 2.1x the scan. A cell cost
the scan 12 s outside its steps (evaluations at step 0, at step 50 and at the end, the control) and a
command 58 s (a new process, imports, loading a 124M-parameter model, its own pass over the pairs).

With the scan's trained controls (``shuffled`` and ``untrained`` at the 3 best cells by IIA, the
default since they exist; ``--commands 0``, nothing else running): the 36 cells 2135 s (1525 s in steps:
slower than the sitting above, on the same machine type), the controls 479 s more: 22% (393 s, 18%, in a
first sitting whose ``untrained`` control was the model itself: drawn under the same seed as this random
model, now under a derived one). The best cells' IIA, 0.37 (layer.10 @ last), 0.33 (layer.11 @ last) and
0.32 (layer.0 @ last), is matched by another random model's (``untrained``: 0.29, 0.33, 0.34; ``shuffled``
0.0): selectivity 0.08, 0.00 and -0.02, none above 0.1.

At ``--layers 2 --rows 200 --steps 10 --commands 6 --threads 1`` (6 cells, all also run as commands, on
a 2-core machine busy with other work): the scan 78.0 s (60.2 s in training steps: 77%; the shared
states 1.8 s once), the six commands 121.4 s (60.3 s in steps: 50%), 1.6x. Outside their steps a cell
cost the scan 2.0 s (evaluations, the control, checkpoints) and a command 10.2 s (a new process, imports,
loading the model, its own pass over the pairs for the prefix cache and again for the control).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from alignsearch.search.results import RunResults
from alignsearch.tables import markdown_table

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEADS, VOCAB = 768, 12, 50257
POSITIONS = ("last", "-2", "-3")


def build_model(folder: Path, layers: int, seed: int = 0) -> Path:
    """A random GPT-2 of ``layers`` blocks (GPT-2 small's width, heads and vocabulary) with the toy
    tokenizer, saved in ``folder``."""
    import torch
    import transformers

    from alignsearch.text import toy

    tokenizer = toy.build_tokenizer()
    config = transformers.AutoConfig.for_model(
        "gpt2", n_layer=layers, n_embd=WIDTH, n_head=HEADS, vocab_size=VOCAB, n_positions=1024,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_pairs(path: Path, rows: int) -> Path:
    from alignsearch.text.toy import count_pair_rows

    path.write_text("".join(json.dumps(row) + "\n" for row in count_pair_rows(rows, seed=0)))
    return path


def timed(command: list[str], cwd: Path, threads: int) -> float:
    """Run ``command`` (a new process) and return its wall time; its output is shown on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HYDRA_FULL_ERROR": "0"}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds


def trained_controls(summary: dict, scan_wall: float) -> dict | None:
    """What the scan's trained controls (``scan.controls_top``) cost and found, from its ``scan.json``:
    their ``seconds``, the ``extra`` wall time against the scan without them (``seconds / (wall -
    seconds)``), and the largest selectivity of any cell (IIA minus its best trained control) with the
    cell it is ``at``; None where no trained control ran.

    >>> trained_controls({"seconds": {"controls": 20.0}, "cells": [
    ...     {"site": "layer.0", "position": "last", "selectivity": 0.02},
    ...     {"site": "layer.1", "position": "last", "selectivity": -0.1}, {"site": "layer.2", "position": "-2"}]}, 120.0)
    {'seconds': 20.0, 'extra': 0.2, 'max_selectivity': 0.02, 'at': 'layer.0 @ last'}
    """
    rated = [c for c in summary["cells"] if c.get("selectivity") is not None]
    if not rated:
        return None
    seconds = summary["seconds"].get("controls", 0.0)
    top = max(rated, key=lambda c: c["selectivity"])
    return {
        "seconds": seconds,
        "extra": round(seconds / (scan_wall - seconds), 4),
        "max_selectivity": top["selectivity"],
        "at": f"{top['site']} @ {top['position']}",
    }


def spread(cells: list[tuple[int, str]], k: int) -> list[tuple[int, str]]:
    """``k`` cells at layers spread evenly over the grid, positions in turn (all of them if ``k`` is not
    smaller than the grid).

    >>> spread([(i, p) for i in range(12) for p in ("last", "-2", "-3")], 4)
    [(0, 'last'), (4, '-2'), (7, '-3'), (11, 'last')]
    """
    if k >= len(cells):
        return cells
    layers = sorted({layer for layer, _ in cells})
    picked = [layers[round(i * (len(layers) - 1) / max(k - 1, 1))] for i in range(k)]
    return [(layer, POSITIONS[i % len(POSITIONS)]) for i, layer in enumerate(picked)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=12, help="blocks of the model, all scanned (12)")
    parser.add_argument("--units", type=int, default=16, help="units of the aligned subspace (16)")
    parser.add_argument("--steps", type=int, default=50, help="training steps a cell (50)")
    parser.add_argument("--rows", type=int, default=1000, help="rows of the pairs file (1000)")
    parser.add_argument("--commands", type=int, default=4, help="cells timed as run_alignment commands (4)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of every process (2)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="alignment.batch_size of every cell (default: the config's)",
    )
    parser.add_argument("--hardware", default="cpu", help="the hardware config: cpu or gpu (cpu)")
    parser.add_argument("--out", type=Path, default=None, help="keep everything in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scan-speed-") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        report(out.resolve(), args)


def report(out: Path, args: argparse.Namespace) -> None:
    start = time.perf_counter()
    folder = build_model(out / "model", args.layers)
    pairs = write_pairs(out / "pairs.jsonl", args.rows)
    print(f"model and pairs built in {time.perf_counter() - start:.1f} s ({out})", flush=True)
    common = [
        "model=lm", f"model.path={folder}", "data=pairs", f"data.path={pairs}", f"n_units={args.units}",
        "alignment.stop_at=null", f"hardware={args.hardware}", f"hardware.threads={args.threads}",
        "hardware.progress_bar=false",
        *([f"alignment.batch_size={args.batch_size}"] if args.batch_size else []),
    ]  # fmt: skip
    sites = ",".join(f"layer.{i}" for i in range(args.layers))
    scan_wall = timed(
        [sys.executable, "-m", "alignsearch.scan", *common, f"scan.sites=[{sites}]",
         f"scan.positions=[{','.join(POSITIONS)}]", f"scan.steps={args.steps}", f"paths.output_dir={out / 'scan'}"],
        out, args.threads,
    )  # fmt: skip
    summary = json.loads((out / "scan" / "scan.json").read_text())
    seconds = summary["seconds"]
    cells = [(i, p) for i in range(args.layers) for p in POSITIONS]
    print(f"scan of {len(cells)} cells: {scan_wall:.1f} s", flush=True)
    controlled = trained_controls(summary, scan_wall)
    if controlled:
        print(
            f"trained controls ({', '.join(summary['trained_controls'])}) at the top {summary['controls_top']}"
            f" cells: {controlled['seconds']:.1f} s, {controlled['extra']:.0%} more than the scan without them;"
            f" largest selectivity {controlled['max_selectivity']:+.3f} at {controlled['at']}",
            flush=True,
        )
    runs = []
    for layer, position in spread(cells, args.commands) if args.commands > 0 else []:
        run_dir = out / "commands" / f"layer{layer}_{position}"
        wall = timed(
            [sys.executable, str(ROOT / "run_alignment.py"), *common, f"layer={layer}", f"position={position}",
             f"alignment.max_steps={args.steps}", "alignment.controls=[random_subspace]", f"paths.output_dir={run_dir}"],
            out, args.threads,
        )  # fmt: skip
        phases = RunResults.read(run_dir / "results.json").seconds or {}
        runs.append({"layer": layer, "position": position, "wall": wall, "steps": phases.get("steps", 0.0)})
        print(f"run_alignment.py layer={layer} position={position}: {wall:.1f} s", flush=True)
    n = len(cells)
    rows = [
        ["scan (one command)", f"{scan_wall:.1f}", f"{scan_wall / n:.2f}", f"{seconds['steps']:.1f}",
         f"{seconds['steps'] / scan_wall:.0%}", f"{seconds['states']:.1f}"],
    ]  # fmt: skip
    result = {
        "layers": args.layers, "positions": list(POSITIONS), "units": args.units, "steps": args.steps,
        "rows": args.rows, "threads": args.threads, "hardware": args.hardware, "cells": n,
        "batch_size": args.batch_size,
        "scan": {"wall": round(scan_wall, 2), **seconds}, "commands": runs, "trained_controls": controlled,
    }  # fmt: skip
    if runs:
        mean = sum(r["wall"] for r in runs) / len(runs)
        mean_steps = sum(r["steps"] for r in runs) / len(runs)
        every = len(runs) >= n
        total = sum(r["wall"] for r in runs) if every else mean * n
        label = f"{n} run_alignment commands" + ("" if every else f" (mean of {len(runs)} x {n})")
        rows.append(
            [label, f"{total:.1f}", f"{mean:.2f}", f"{mean_steps * n:.1f}", f"{mean_steps / mean:.0%}", "-"]
        )
        result["commands_total"] = round(total, 2)
        result["estimated"] = not every
        print(
            f"\nthe scan is {total / scan_wall:.1f}x faster than the same cells command by command",
            flush=True,
        )
    print(
        markdown_table(
            ["how", "wall s", "s a cell", "in steps s", "share in steps", "shared states s"], rows
        ),
        flush=True,
    )
    atomic_json = out / "scan_speed.json"
    atomic_json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {atomic_json}", flush=True)


if __name__ == "__main__":
    main()
