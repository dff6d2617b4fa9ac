"""A folder's report, written: read what it holds, aggregate over seeds (a partner seed derived from the
seed is part of it), render ``report.md`` and ``report.csv``, draw ``plots/`` and, asked for, compare two
conditions over the same seeds (``comparison.csv``; see :mod:`alignsearch.report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alignsearch import atomic
from alignsearch.report.aggregate import (
    fold_partner_seeds,
    shared_settings,
    summarize,
    table_keys,
    training_correlation,
)
from alignsearch.report.compare import COMPARISON_CSV, Comparison, compare, comparison_csv, comparison_section
from alignsearch.report.measures import PAIR_METRICS, SELECTIVITY, metrics_present
from alignsearch.report.reading import Collected, collect, system_reason
from alignsearch.report.render import (
    CONTROL_DIVERGENCE_NOTE,
    controls_note,
    failed_section,
    pair_section,
    repeated_section,
    to_csv,
    to_markdown,
    unreadable_section,
)
from alignsearch.search.records import CONTROL_DIVERGENCE_PREFIX
from alignsearch.search.run_folder import METRICS, RESULTS

PLOTS = "plots"
EXIT_ALL_JOBS_FAILED, EXIT_USAGE = 1, 2


class NothingToReport(Exception):
    """No run under the folder could be read; ``status`` is the exit status it gives."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class CannotWrite(Exception):
    """The report could not be written where asked; the message names the place and the reason."""


def nothing_to_report(folder: Path, collected: Collected) -> NothingToReport:
    """Why there is no report: no ``results.json`` at all or none readable (bad input), or only failed
    jobs (the sweep's own failure)."""
    if not collected.n_results and not collected.failed:
        return NothingToReport(f"no {RESULTS} under {folder}", EXIT_USAGE)
    counts = [f"{len(collected.unreadable)} unreadable"] if collected.unreadable else []
    counts += [f"{len(collected.failed)} failed job(s)"] if collected.failed else []
    status = EXIT_USAGE if collected.n_results else EXIT_ALL_JOBS_FAILED
    return NothingToReport(f"no readable {RESULTS} under {folder} ({', '.join(counts)})", status)


def report(
    folder: Path,
    out_dir: Path | None = None,
    collected: Collected | None = None,
    comparison: Comparison | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """Write ``report.md``, ``report.csv`` and ``plots/`` for ``folder`` into ``out_dir`` (default: it);
    with a ``comparison``, also its section of ``report.md`` and ``comparison.csv``
    (:mod:`alignsearch.report.compare`).

    ``collected`` is what :func:`collect` read from ``folder`` (read here when not given). Raises
    :class:`NothingToReport` when no run could be read, :class:`CannotWrite` when ``out_dir`` refuses,
    :class:`~alignsearch.report.compare.CannotCompare` (before writing anything) when the runs cannot
    answer the comparison.
    """
    collected = collected if collected is not None else collect(folder)
    if not collected.rows:
        raise nothing_to_report(folder, collected)
    rows = fold_partner_seeds(collected.rows, collected.config_keys)  # a partner seed of seed + 1: the seed's
    varying = table_keys(rows, collected.config_keys)
    shared = shared_settings(rows, collected.config_keys)
    metrics = metrics_present(rows)
    summary = summarize(rows, varying, metrics)  # report.csv: every measure on every row
    measured = [m for m in metrics if m not in PAIR_METRICS]
    compared = (
        None if comparison is None else compare(rows, collected.config_keys, comparison, measured, varying)
    )
    markdown = to_markdown(summary, shared, measured)
    pairs = pair_section(rows, varying)
    markdown += f"\n{pairs}" if pairs else ""
    if SELECTIVITY in metrics:
        diverging = any(m.startswith(CONTROL_DIVERGENCE_PREFIX) for m in metrics)
        markdown += f"\n{controls_note()}{' ' + CONTROL_DIVERGENCE_NOTE if diverging else ''}\n"
    r, n = training_correlation(rows)
    if n:
        shown = "-" if r is None else f"{r:.3f}"
        markdown += (
            f"\nIIA against task accuracy over training snapshots: Pearson r = {shown} ({n} records)\n"
        )
    if compared is not None:
        markdown += "\n" + comparison_section(compared)
    if not collected.curves:
        markdown += f"\nNo IIA learning curves: no run has a readable {METRICS}.\n"
    out_dir = out_dir or folder
    from alignsearch.report.plots import write_plots  # matplotlib only when there is something to draw

    try:
        plots = write_plots(rows, varying, out_dir / PLOTS, collected.curves)
        if plots:
            markdown += "\n" + "\n".join(f"![{p.stem}]({PLOTS}/{p.name})" for p in plots) + "\n"
        sections = (
            failed_section(collected.failed),
            repeated_section(collected.repeated),
            unreadable_section(collected.unreadable),
        )
        for section in sections:
            markdown += "\n" + section if section else ""
        atomic.write_text(out_dir / "report.md", markdown)
        atomic.write_text(out_dir / "report.csv", to_csv(summary))
        if compared is not None:
            atomic.write_text(out_dir / COMPARISON_CSV, comparison_csv(compared))
    except OSError as e:
        raise CannotWrite(f"cannot write the report to {out_dir}: {write_failure(out_dir, e)}") from e
    return markdown, summary


def write_failure(out_dir: Path, error: OSError) -> str:
    """Why writing into ``out_dir`` failed, in words: a file in the way by name, else the system's reason."""
    place = Path(error.filename) if isinstance(error.filename, str) else out_dir
    for parent in (place, *place.parents):
        try:
            if parent.exists():
                if not parent.is_dir():
                    return f"{parent} is a file, not a folder"
                break
        except OSError:
            break
    return system_reason(error)  # "permission denied", "read-only file system"
