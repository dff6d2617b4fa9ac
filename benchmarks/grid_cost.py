"""Where a sweep's (or a whole ``reproduce`` grid's) time goes: the ``seconds`` of every run's
``results.json`` under a folder, added up by phase, beside the wall time the sweep took.

    python benchmarks/grid_cost.py multirun/reproduce/full [--wall-seconds 5400 --workers 2]
    python benchmarks/grid_cost.py AGAIN --against multirun/reproduce/full/mas   # a sample run again

``--against BEFORE``: the runs under the folder are the same jobs as runs under ``BEFORE`` (the same
job folder names, e.g. a sample of a grid's jobs run again by newer code): for each, whether its records
are the same (every field; none differs: the change kept the results) and its phases beside the earlier
run's, then both totals.

Prints a table: each phase's seconds and its share of the runs' time, the share spent in training steps
(``steps``, the alignment's and its trained controls'), and, given the sweep's wall time and its number of
parallel workers, what the runs do not account for (process start, imports, Hydra, zoo loading and
task-model training). Each job's start (composing its config, loading or training its zoo models) is
the time from Hydra's ``.hydra/`` to the run's ``run.json``. Runs written before ``seconds`` existed are
split by their files' times: ``train_seconds`` (steps and the evaluations between them) and the rest.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alignsearch.search.results import RunResults
from alignsearch.tables import markdown_table


def job_runs(folder: Path) -> dict[Path, Path]:
    """``{job folder, relative to folder: its results.json}`` for the runs under ``folder`` (a run's
    controls run inside it and superseded runs are history: neither is a run of its own)."""
    return {
        path.parent.relative_to(folder): path
        for path in sorted(folder.rglob("results.json"))
        if "controls" not in path.parts and "superseded" not in path.parts
    }


def phase_totals(folder: Path) -> tuple[dict[str, float], int, int]:
    """``({phase: seconds}, runs with phases, runs without)`` over the runs under ``folder`` (a run's
    controls run inside it and count in its ``controls`` phase, not as runs of their own)."""
    totals: dict[str, float] = {}
    timed = untimed = 0
    for path in job_runs(folder).values():
        results = RunResults.read(path)
        seconds = results.seconds
        if seconds is None:
            untimed += 1
            seconds = from_file_times(path.parent, results.train_seconds or 0.0)
        else:
            timed += 1
            seconds = {**seconds, **job_start(path.parent)}
        for phase, value in seconds.items():
            totals[phase] = totals.get(phase, 0.0) + value
    return totals, timed, untimed


def job_start(run: Path) -> dict[str, float]:
    """The seconds between the job's start (Hydra writes ``.hydra/`` first) and the run core's (``run.json``):
    composing the config, loading (or training) the zoo models; empty where the folder lacks either."""
    hydra, started = run / ".hydra" / "config.yaml", run / "run.json"
    if not (hydra.is_file() and started.is_file()):
        return {}
    return {"job start (config, zoo)": max(0.0, started.stat().st_mtime - hydra.stat().st_mtime)}


def from_file_times(run: Path, train_seconds: float) -> dict[str, float]:
    """A run written before ``seconds`` existed, split by its files' times: the run core's time
    (``run.json`` to ``results.json``) into training (``train_seconds``: steps and the evaluations
    between them) and the rest (pairs, final evaluation, controls, similarity)."""
    core = (run / "results.json").stat().st_mtime - (run / "run.json").stat().st_mtime
    return {
        **job_start(run),
        "training (steps and validation)": train_seconds,
        "rest of the run (pairs, evaluation, controls, similarity)": max(0.0, core - train_seconds),
    }


def compare(again: Path, before: Path) -> None:
    """Each run under ``again`` beside the run of the same job under ``before``: same records, seconds."""
    earlier = job_runs(before)
    rows, totals = [], {"before": 0.0, "again": 0.0}
    for name, path in job_runs(again).items():
        if name not in earlier:
            continue
        old, new = (RunResults.read(p) for p in (earlier[name], path))
        same = old.records == new.records
        old_s, new_s = old.seconds or {}, new.seconds or {}
        totals["before"] += sum(old_s.values())
        totals["again"] += sum(new_s.values())
        phases = sorted(set(old_s) | set(new_s))
        rows.append([name.as_posix(), "yes" if same else "NO",
                     ", ".join(f"{k} {old_s.get(k, 0):.0f}>{new_s.get(k, 0):.0f}" for k in phases)])  # fmt: skip
    print(markdown_table(["job", "same records", "seconds by phase, before>again"], rows))
    print(f"{len(rows)} jobs: {totals['before']:.0f} s before, {totals['again']:.0f} s again")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--wall-seconds", type=float, help="the sweep's wall time")
    parser.add_argument("--workers", type=int, default=1, help="jobs run at once (hydra.launcher.n_jobs)")
    parser.add_argument("--against", type=Path, help="the same jobs run earlier: compare records and seconds")
    args = parser.parse_args()
    if args.against is not None:
        compare(args.folder, args.against)
        return
    totals, timed, untimed = phase_totals(args.folder)
    runs = sum(totals.values())
    rows = [[phase, f"{value:.0f}", f"{value / runs:.1%}"] for phase, value in sorted(totals.items())]
    rows.append(["all jobs", f"{runs:.0f}", "100%"])
    if args.wall_seconds:
        budget = args.wall_seconds * args.workers
        rows.append(["outside the jobs (process start, imports, idle workers)", f"{budget - runs:.0f}",
                     f"{(budget - runs) / budget:.1%} of wall x workers"])  # fmt: skip
    print(f"{timed + untimed} runs ({untimed} without phases) under {args.folder}")
    print(markdown_table(["phase", "seconds", "share"], rows))
    if "steps" in totals:
        print(f"training steps: {totals['steps'] / runs:.1%} of the runs' time")


if __name__ == "__main__":
    main()
