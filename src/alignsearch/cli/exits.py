"""How every command ends: one set of exit statuses, and one way to say what went wrong.

A refused command prints one line, ``error: <what is wrong>``, on stderr and exits with
:data:`EXIT_USAGE`; a command that did part of its work (a sweep whose jobs did not all succeed, zoo
entries ``migrate`` had to leave) exits with :data:`EXIT_FAILED_JOBS`; a command a signal stopped exits
with the status a shell gives a process that signal ended (``128 + signal``:
:attr:`alignsearch.engine.interrupt.Interrupted.exit_status`).

    >>> failed("model.path=x is not allowed: expected a folder", EXIT_USAGE)
    2

The report's reasons for having nothing to report carry the same statuses
(:class:`alignsearch.report.NothingToReport`'s ``status``):

    >>> from alignsearch import report
    >>> (report.EXIT_ALL_JOBS_FAILED, report.EXIT_USAGE) == (EXIT_FAILED_JOBS, EXIT_USAGE)
    True
"""

from __future__ import annotations

import sys
from typing import NoReturn

EXIT_OK = 0
"""All the work was done."""
EXIT_FAILED_JOBS = 1
"""Part of the work failed or was left undone: jobs of a sweep failed (the others ran), a report found
results of none of a sweep's jobs, ``python -m alignsearch.zoo migrate`` left an entry whose name is taken."""
EXIT_USAGE = 2
"""Nothing was done: the command line, a setting or an input was refused (one ``error:`` line says why)."""


def failed(error: object, code: int = EXIT_USAGE) -> int:
    """Print ``error: <error>`` as one line on stderr; return ``code``, what a ``main`` that returns its
    status returns."""
    print(f"error: {error}", file=sys.stderr, flush=True)
    return code


def fail(error: object, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: <error>`` as one line on stderr and end the command with ``code``."""
    finish(failed(error, code))


def finish(code: int | None = EXIT_OK) -> NoReturn:
    """End the command with ``code`` (None: :data:`EXIT_OK`), e.g. ``finish(main())``."""
    sys.exit(EXIT_OK if code is None else code)
