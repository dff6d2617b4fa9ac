"""The statistics a claim is measured with: values of matching rows, their mean, ``mean [low, high] (n)``
(the 95% interval over seeds, :func:`alignsearch.intervals.student_t`), and a findings table
(:func:`alignsearch.tables.markdown_table`)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from alignsearch.intervals import UNIT, student_t
from alignsearch.tables import markdown_table

Rows = list[dict[str, Any]]


def values(rows: Rows, key: str = "iia", **where: Any) -> list[float]:
    """``key`` of the rows matching ``where`` (a value, or a callable that says whether it matches)."""
    out = []
    for row in rows:
        value = row.get(key)
        matches = all(w(row.get(k)) if callable(w) else row.get(k) == w for k, w in where.items())
        if matches and isinstance(value, int | float) and not isinstance(value, bool):
            out.append(float(value))
    return out


def mean(xs: Sequence[float]) -> float | None:
    return statistics.fmean(xs) if xs else None


def summary(xs: Sequence[float], bounds: tuple[float, float] | None = UNIT) -> str:
    """The mean over seeds with its 95% interval over seeds (Student's t, clipped to ``bounds``: a share's
    by default) and the number of seeds, ``0.960 [0.940, 0.980] (n=5)``; a single value alone, with no
    interval (one seed has no spread to show); ``-`` without values.

    >>> summary([0.95, 0.97, 0.96, 0.98, 0.94]), summary([0.9, 1.0]), summary([0.9])
    ('0.960 [0.940, 0.980] (n=5)', '0.950 [0.315, 1.000] (n=2)', '0.900 (n=1)')
    >>> summary([1.2, 1.4], bounds=None)  # not a share: a divergence
    '1.300 [0.029, 2.571] (n=2)'
    """
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{xs[0]:.3f} (n=1)"
    mean, low, high = student_t(xs, bounds=bounds)
    return f"{mean:.3f} [{low:.3f}, {high:.3f}] (n={len(xs)})"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """The lines of a findings table (:func:`alignsearch.tables.markdown_table`)."""
    return markdown_table(header, rows, pad=False).split("\n")


def is_count(row: dict) -> bool:
    return row.get("variable") == "count" and row.get("direction", "0>0") == "0>0"
