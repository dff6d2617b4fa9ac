"""Turn a run or sweep folder into a table and plots: ``python -m alignsearch.report multirun/<...>``.

Reads every run under the folder and writes ``report.md``, ``report.csv`` and ``plots/`` (what each holds:
:mod:`alignsearch.report`). Also ``python -m alignsearch.cli.report``.

The report is printed on stdout. Exit status: 0 with a report; 2 (bad input) when the folder does not
exist, holds no ``results.json`` or none that can be read, or when the report cannot be written (``--out``
puts it elsewhere); 1 when the folder's sweeps ran but every job failed (as the sweep's own exit status),
with nothing written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from alignsearch.report import EXIT_USAGE, CannotWrite, NothingToReport, collect, report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m alignsearch.report", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a run or sweep folder (searched recursively)")
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the report (default: the folder)"
    )
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"error: folder={args.folder} is not allowed: expected an existing folder", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    collected = collect(args.folder)
    for problem in collected.unreadable:
        print(problem, file=sys.stderr)
    try:
        markdown, _ = report(args.folder, args.out, collected)
    except NothingToReport as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.status)
    except CannotWrite as e:
        hint = "" if args.out else " (choose another folder with --out)"
        print(f"error: {e}{hint}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    print(markdown, end="")


if __name__ == "__main__":
    main()
