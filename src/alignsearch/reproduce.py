"""``python -m alignsearch.reproduce``: the papers' findings, reproduced by one command (the command:
:mod:`alignsearch.cli.reproduce`; the grids, claims, judging and page: :mod:`alignsearch.findings`, whose
names this module also offers, as before)."""

from alignsearch.cli.reproduce import EXIT_FAILED_JOBS, EXIT_USAGE, fail, file_in_the_way, main
from alignsearch.findings import *  # noqa: F403 - the names this module had before the findings package

__all__ = ["EXIT_FAILED_JOBS", "EXIT_USAGE", "fail", "file_in_the_way", "main"]

if __name__ == "__main__":
    from alignsearch.cli.exits import finish

    finish(main())
