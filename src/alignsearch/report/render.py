"""The report as text: ``report.md``'s tables and sections (through :func:`alignsearch.tables.markdown_table`)
and ``report.csv``."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

from alignsearch.controls import CONTROLS
from alignsearch.report.aggregate import summarize
from alignsearch.report.measures import BASE_METRICS, PAIR_METRICS, title
from alignsearch.report.reading import FailedJob, Problem
from alignsearch.tables import MISSING, markdown_table, number


def controls_note() -> str:
    """What the report says of the controls, from the registry: each control's note, which are the
    informative ones, and what selectivity is."""
    described = "; ".join(f"{name} = {control.note}" for name, control in CONTROLS.items())
    informative = [name for name, control in CONTROLS.items() if control.informative]
    which = ""
    if informative:
        are = "are the informative ones" if len(informative) > 1 else "is the informative one"
        which = f" {' and '.join(informative)} {are};"
    return f"Controls (alignment.controls): {described}.{which} selectivity = IIA val minus the best control."


CONTROL_DIVERGENCE_NOTE = (
    "control divergence = the divergence of the control's interventions at the site (validation pairs, the"
    " measure of the divergence column; random_subspace: the mean over its draws), to compare with the"
    " alignment's divergence and its floor."
)
"""Said after :func:`controls_note` where the records hold the controls' divergence (schema 4 on)."""


def to_csv(summary: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    if summary:
        writer = csv.DictWriter(buffer, list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    return buffer.getvalue()


INTERVALS_NOTE = (
    "Each cell: the mean over seeds with its 95% interval over seeds (Student's t, clipped to the measure's"
    " range) and the number of seeds, `0.968 [0.947, 0.989] (n=5)`; one run: its value, with its 95%"
    " interval over its pairs where results.json has it (`(1000 pairs)`: Wilson's; a bootstrap over pairs"
    " for the token IIA). An interval covers the sampling of the pairs and of the seeds, not the choices"
    " held fixed across them (how the task's sequences are sampled, the architecture, the settings)."
)
"""Said under ``report.md``'s first table: what a cell and its interval are."""


def cell(row: dict[str, Any], metric: str) -> str:
    """A measure's cell: ``0.968 [0.947, 0.989] (n=5)`` over seeds; one run's value alone, or with its
    interval over pairs, ``0.922 [0.862, 0.957] (128 pairs)`` (118 of 128 right); ``-`` without a value.

    >>> cell({"iia_mean": 0.968, "iia_low": 0.946764, "iia_high": 0.989236, "iia_n": 5}, "iia")
    '0.968 [0.947, 0.989] (n=5)'
    >>> cell({"iia_mean": 0.9, "iia_low": 0.786398, "iia_high": 0.956524, "iia_n": 1, "iia_pairs": 50}, "iia")
    '0.900 [0.786, 0.957] (50 pairs)'
    >>> cell({"iia_mean": 0.9, "iia_n": 1}, "iia"), cell({"iia_mean": None, "iia_n": 0}, "iia")
    ('0.900', '-')
    """
    mean = row.get(f"{metric}_mean")
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return MISSING
    low, high, n = row.get(f"{metric}_low"), row.get(f"{metric}_high"), row.get(f"{metric}_n")
    if low is None or high is None:
        return number(mean)
    pairs = row.get(f"{metric}_pairs")
    over = f"n={n}" if n != 1 else f"{pairs} pairs" if pairs is not None else "n=1"
    return f"{number(mean)} [{number(low)}, {number(high)}] ({over})"


def to_markdown(
    summary: Sequence[dict[str, Any]], shared: dict[str, Any], metrics: Sequence[str] = BASE_METRICS
) -> str:
    """The summary as a markdown table, after one line of the settings every run shares, and before
    :data:`INTERVALS_NOTE`."""
    lines = []
    if shared:
        lines += ["Shared: " + ", ".join(f"{k}={v}" for k, v in shared.items()), ""]
    if not summary:
        return "\n".join([*lines, "No complete runs."]) + "\n"
    return "\n".join([*lines, summary_table(summary, metrics), "", INTERVALS_NOTE]) + "\n"


def summary_table(summary: Sequence[dict[str, Any]], metrics: Sequence[str]) -> str:
    """A summary's rows (:func:`~alignsearch.report.aggregate.summarize`) as a markdown table: its keys
    (those before ``n``), ``n`` and each metric's :func:`cell`."""
    keys = list(summary[0])[: list(summary[0]).index("n")]
    header = [*keys, "n", *(title(m) for m in metrics)]
    rows = [
        [*(str(row[k]) for k in keys), str(row["n"]), *(cell(row, m) for m in metrics)] for row in summary
    ]
    return markdown_table(header, rows, pad=False)


def pair_section(rows: Sequence[dict[str, Any]], varying: Sequence[str]) -> str:
    """The similarity of each configuration's two models (CKA, RSA of ``similarity.json``), once per model
    pair rather than on each direction's row: the mean and its 95% interval over the configuration's runs
    (seeds). Empty without two-model runs."""
    metrics = [m for m in PAIR_METRICS if any(r.get(m) is not None for r in rows)]
    if not metrics:
        return ""
    runs = list({r["run"]: r for r in rows if any(r.get(m) is not None for m in metrics)}.values())
    pairs = summarize(runs, varying, metrics, row_keys=())
    return (
        "Similarity of the two models (similarity.json: one value per run, whatever the direction), over"
        " each model pair's runs:\n\n" + summary_table(pairs, metrics) + "\n"
    )


def failed_section(failed: Sequence[FailedJob]) -> str:
    """The "Failed jobs" section of ``report.md`` (empty without failed jobs)."""
    if not failed:
        return ""
    lines = [
        "## Failed jobs",
        "",
        f"{len(failed)} failed job(s) (each job's latest row in its sweep's summary.csv), not in the table:",
        "",
        markdown_table(
            ["job folder", "overrides", "error"],
            [[f"`{job.folder}`", job.overrides, job.error] for job in failed],
            pad=False,
        ),
    ]
    return "\n".join(lines) + "\n"


def repeated_section(repeated: Sequence[tuple[str, str]]) -> str:
    """The "Repeated runs" section of ``report.md`` (empty without repeats)."""
    if not repeated:
        return ""
    lines = [
        "## Repeated runs",
        "",
        f"{len(repeated)} run(s) have every setting and the seed of a newer run; only the newer counts:",
        "",
        markdown_table(
            ["left out", "newer run"], [[f"`{old}`", f"`{new}`"] for old, new in sorted(repeated)], pad=False
        ),
    ]
    return "\n".join(lines) + "\n"


def unreadable_section(unreadable: Sequence[Problem]) -> str:
    """The "Unreadable runs" section of ``report.md`` (empty when every file could be read)."""
    if not unreadable:
        return ""
    lines = [
        "## Unreadable runs",
        "",
        f"{len(unreadable)} file(s) could not be read; what they hold is left out:",
        "",
    ]
    lines += [f"- `{p.path}`: {p.reason}" for p in unreadable]
    return "\n".join(lines) + "\n"
