"""The statistics a claim is measured with: values of matching rows, their mean, ``mean ± sd (n)``, and
a findings table (:func:`alignsearch.tables.markdown_table`)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

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


def summary(xs: Sequence[float]) -> str:
    """``0.953 ± 0.021 (n=5)``; a single value alone (no spread to show); ``-`` without values.

    >>> summary([0.9, 1.0]), summary([0.9])
    ('0.950 ± 0.071 (n=2)', '0.900 (n=1)')
    """
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{xs[0]:.3f} (n=1)"
    return f"{statistics.fmean(xs):.3f} ± {statistics.stdev(xs):.3f} (n={len(xs)})"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """The lines of a findings table (:func:`alignsearch.tables.markdown_table`)."""
    return markdown_table(header, rows, pad=False).split("\n")


def is_count(row: dict) -> bool:
    return row.get("variable") == "count" and row.get("direction", "0>0") == "0>0"
