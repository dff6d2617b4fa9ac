"""Turn a run or sweep folder into a table and plots: ``python -m alignsearch.report multirun/<...>``.

Reads every run under the folder and writes ``report.md``, ``report.csv`` and ``plots/`` (what each holds:
:mod:`alignsearch.report`). Also ``python -m alignsearch.cli.report``.

``--compare <setting>=<a>,<b>`` (``--compare model=gru,lstm``) also compares the two conditions over the
seeds both have: each run at ``a`` paired with the run at ``b`` of the same seed and every other setting,
the mean difference of each measure with its 95% interval and the paired t-test's p-value, in a section
of ``report.md`` and in ``comparison.csv`` (:mod:`alignsearch.report.compare`).

The report is printed on stdout. Exit status: 0 with a report; 2 (bad input) when the folder does not
exist, holds no ``results.json`` or none that can be read, when ``--compare`` names a setting or a value
no run has, or when the report cannot be written (``--out`` puts it elsewhere); 1 when the folder's sweeps
ran but every job failed (as the sweep's own exit status), with nothing written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from alignsearch.cli.exits import EXIT_OK, EXIT_USAGE, fail
from alignsearch.report import CannotWrite, NothingToReport, collect, report
from alignsearch.report.compare import CannotCompare, Comparison


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alignsearch.report", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a run or sweep folder (searched recursively)")
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the report (default: the folder)"
    )
    parser.add_argument(
        "--compare",
        metavar="SETTING=A,B",
        default=None,
        help="compare two values of a setting over the same seeds (model=gru,lstm): the mean difference"
        " A - B of each measure, its 95%% interval and the paired t-test's p, into report.md and"
        " comparison.csv",
    )
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        fail(f"folder={args.folder} is not allowed: expected an existing folder", EXIT_USAGE)
    try:
        comparison = None if args.compare is None else Comparison.parse(args.compare)
    except CannotCompare as e:
        fail(e, EXIT_USAGE)
    collected = collect(args.folder)
    for problem in collected.unreadable:
        print(problem, file=sys.stderr)
    try:
        markdown, _ = report(args.folder, args.out, collected, comparison)
    except CannotCompare as e:
        fail(e, EXIT_USAGE)
    except NothingToReport as e:
        fail(e, e.status)  # EXIT_USAGE, or EXIT_FAILED_JOBS where every job of the sweeps failed
    except CannotWrite as e:
        hint = "" if args.out else " (choose another folder with --out)"
        fail(f"{e}{hint}", EXIT_USAGE)
    print(markdown, end="")
    return EXIT_OK


if __name__ == "__main__":
    from alignsearch.cli.exits import finish

    finish(main())
