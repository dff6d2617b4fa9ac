"""The papers' findings, reproduced by one command: run the grids behind each claim, then judge each claim.

    python -m alignsearch.reproduce --size small          # a laptop: about 15 minutes on 2 CPU cores
    python -m alignsearch.reproduce --size full hardware=slurm hydra.launcher.partition=gpu   # a cluster

Each grid is a preset of ``conf/experiment`` (:data:`alignsearch.findings.grids.GRIDS`: ``count`` is ``findings_count``, ``upup`` is
``upup_vs_updown``, ...; ``--only`` takes either name), run as a sweep of ``run_alignment`` into
``<out>/<grid>`` (default ``multirun/reproduce/<size>``); extra arguments are passed to every sweep (a
launcher, hardware). On this machine the grids run one after another; through a queue (``hardware=slurm``)
every grid's sweep submits its jobs at once (:func:`alignsearch.findings.grids.run_grids`). Running the
command again resumes: finished jobs are reused, interrupted ones
resume. Then ``<out>/FINDINGS.md`` gets, for each claim, the measured numbers over seeds (mean, standard
deviation, n; a single run: its value and n=1), the controls where they apply, and a one-line verdict
against a threshold written down before any run (:mod:`alignsearch.findings.claims`); each grid folder also gets its
report and plots (:mod:`alignsearch.report`). ``--skip-runs`` only judges what the folders already hold.
``--publish docs/findings.md`` also copies the page there, its plots into ``docs/findings/<grid>/``,
keeping whatever the old page had below :data:`alignsearch.findings.page.NOTES_MARKER` (notes written after reading the results).

Exit status: 0 with the findings written; 1 when a grid had failed jobs (the findings are written); 2
(one line) for bad input: an unknown grid, an ``--out`` that is a file or cannot be written,
``--skip-runs`` on grid folders without runs.
"""

from __future__ import annotations

import argparse
import datetime
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from alignsearch import atomic
from alignsearch.cli import exits
from alignsearch.cli.exits import EXIT_FAILED_JOBS, EXIT_OK, EXIT_USAGE, finish
from alignsearch.findings import (
    RUN_RECORD,
    SIZES,
    add_sitting,
    findings,
    grid_names,
    has_runs,
    publish,
    read_record,
    run_grids,
    selected_grids,
)
from alignsearch.report import CannotWrite, write_failure


def file_in_the_way(out: Path) -> Path | None:
    """``out`` or the nearest of its parents that exists, where that is a file rather than a folder."""
    for place in (out, *out.parents):
        if place.exists():
            return None if place.is_dir() else place
    return None


def fail(message: str) -> NoReturn:
    """Bad input: one line, exit status 2 (:data:`alignsearch.cli.exits.EXIT_USAGE`)."""
    exits.fail(message, EXIT_USAGE)


def main(argv: Sequence[str] | None = None) -> int | None:
    parser = argparse.ArgumentParser(
        prog="python -m alignsearch.reproduce",
        description=__doc__.split("\n")[0],
        epilog="Other arguments (Hydra overrides: a launcher, hardware) go to every grid's sweep.",
    )
    parser.add_argument(
        "--size",
        choices=tuple(SIZES),
        default="small",
        help="; ".join(f"{size}: {what}" for size, what in SIZES.items()) + " (default: small)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="the folder of every grid and FINDINGS.md (default: multirun/reproduce/<size>)",
    )
    parser.add_argument(
        "--only",
        help="comma-separated grids to run, by grid or preset name (default: all): " + grid_names(),
    )
    parser.add_argument(
        "--skip-runs", action="store_true", help="run nothing: judge what the grid folders already hold"
    )
    parser.add_argument(
        "--publish",
        type=Path,
        metavar="PAGE",
        help="also copy FINDINGS.md to PAGE (e.g. docs/findings.md) and its plots beside it, keeping the"
        " old page's notes below its notes marker",
    )
    args, extra = parser.parse_known_args(argv)
    out = (args.out or Path("multirun") / "reproduce" / args.size).resolve()
    try:
        grids = selected_grids(args.only)
    except ValueError as e:
        fail(str(e))
    blocker = file_in_the_way(out)
    if blocker is not None:
        fail(f"--out {out}: {blocker} is a file, not a folder")
    if args.skip_runs and not has_runs(out):
        fail(
            f"--skip-runs: no runs to judge in {out} (no results.json in its grid folders); run the grids"
            f" first: python -m alignsearch.reproduce --size {args.size}"
        )
    start, started = time.perf_counter(), datetime.datetime.now().isoformat(timespec="seconds")
    failed = [] if args.skip_runs else run_grids(grids, args.size, out, extra)
    command = " ".join(["python -m alignsearch.reproduce", f"--size {args.size}", *extra])
    try:
        if args.skip_runs:
            run = read_record(out)
        else:  # what this run took, kept for a later --skip-runs
            run = add_sitting(read_record(out), command, started, time.perf_counter() - start)
            atomic.write_json(out / RUN_RECORD, run)
        text = findings(out, args.size, run.get("seconds"), run.get("command"), len(run.get("sittings", [])))
        atomic.write_text(out / "FINDINGS.md", text)
        if args.publish is not None:
            publish(out, args.publish)
    except CannotWrite as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot write the findings to {out}: {write_failure(out, e)}")
    print(
        f"findings: {out / 'FINDINGS.md'}"
        + (f" (grids with failed jobs: {', '.join(failed)})" if failed else "")
    )
    finish(EXIT_FAILED_JOBS if failed else EXIT_OK)


if __name__ == "__main__":
    main()
