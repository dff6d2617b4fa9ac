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


def _cell(mean: float | None, std: float | None) -> str:
    """``0.950 ± 0.050``; the value alone without a standard deviation (one run); ``-`` without a value."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return MISSING
    return number(mean) if std is None else f"{number(mean)} ± {number(std)}"


def to_markdown(
    summary: Sequence[dict[str, Any]], shared: dict[str, Any], metrics: Sequence[str] = BASE_METRICS
) -> str:
    """The summary as a markdown table, after one line of the settings every run shares."""
    lines = []
    if shared:
        lines += ["Shared: " + ", ".join(f"{k}={v}" for k, v in shared.items()), ""]
    if not summary:
        return "\n".join([*lines, "No complete runs."]) + "\n"
    return "\n".join([*lines, summary_table(summary, metrics)]) + "\n"


def summary_table(summary: Sequence[dict[str, Any]], metrics: Sequence[str]) -> str:
    """A summary's rows as a markdown table: its keys, ``n`` and each metric's mean ± std."""
    keys = [k for k in summary[0] if k != "n" and not k.endswith(("_mean", "_std"))]
    header = [*keys, "n", *(title(m) for m in metrics)]
    rows = [
        [
            *(str(row[k]) for k in keys),
            str(row["n"]),
            *(_cell(row[f"{m}_mean"], row[f"{m}_std"]) for m in metrics),
        ]
        for row in summary
    ]
    return markdown_table(header, rows, pad=False)


def pair_section(rows: Sequence[dict[str, Any]], varying: Sequence[str]) -> str:
    """The similarity of each configuration's two models (CKA, RSA of ``similarity.json``), once per model
    pair rather than on each direction's row: mean ± std over the configuration's runs (seeds). Empty
    without two-model runs."""
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
