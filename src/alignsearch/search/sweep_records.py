"""A sweep's record of its jobs, ``<sweep>/summary.csv``: one row per job, its latest state.

The command line's sweep callback (:mod:`alignsearch.cli.sweep`) writes it as jobs end; the report reads it
(its "Failed jobs"). Columns: ``job`` (the job's folder name), ``status`` (a
:class:`~alignsearch.search.results.RunStatus` word), ``overrides`` (as the job's folder name has them),
``iia`` (the job's headline IIA, 4 decimals), ``error``, and for a job that ran in Slurm ``slurm_job`` (its
id, ``17_2`` for task 2 of array 17) and ``log`` (the file its output went to).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from filelock import FileLock

from alignsearch import atomic
from alignsearch.search.results import RunStatus

SUMMARY = "summary.csv"
COLUMNS = ("job", "status", "overrides", "iia", "error", "slurm_job", "log")
UNFINISHED = (RunStatus.FAILED, RunStatus.INTERRUPTED, RunStatus.REQUEUED)
"""The statuses of jobs without results (a rerun of the sweep runs them again)."""
ENDED_UNFINISHED = (RunStatus.FAILED, RunStatus.INTERRUPTED)
"""The statuses of jobs that ended without results (the sweep exits non-zero)."""


def write_row(sweep: Path, row: dict[str, str]) -> None:
    """Put ``row`` in the sweep's summary as its job's only row (replacing the job's earlier one), under
    the summary's lock; the file is replaced whole, never left half written."""
    sweep.mkdir(parents=True, exist_ok=True)
    with FileLock(sweep / f"{SUMMARY}.lock"):
        rows = latest_rows(sweep)
        rows[row["job"]] = row
        atomic.write_text(sweep / SUMMARY, summary_text(rows.values()))


def summary_text(rows: Iterable[dict[str, str]]) -> str:
    """The text of a ``summary.csv`` holding ``rows``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def latest_rows(sweep: Path) -> dict[str, dict[str, str]]:
    """Each job's row in the sweep's summary, in the order the jobs first ended (the latest, where a file
    written by an earlier version of this module holds several rows per job)."""
    if not (sweep / SUMMARY).is_file():
        return {}
    with (sweep / SUMMARY).open(newline="") as f:
        return {row["job"]: row for row in csv.DictReader(f)}


def failed_jobs(sweep: Path) -> list[str]:
    """Jobs whose latest row in the sweep's summary says they failed or a signal ended them."""
    return [job for job, row in latest_rows(sweep).items() if row["status"] in ENDED_UNFINISHED]
