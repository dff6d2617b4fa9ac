"""The statistics a claim is measured with: values of matching rows, their mean, ``mean [low, high] (n)``
(the 95% interval over seeds, :func:`alignsearch.intervals.student_t`), the difference of two conditions
over the seeds both have with its 95% interval (:func:`alignsearch.intervals.paired_difference`), and a
findings table (:func:`alignsearch.tables.markdown_table`)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

from alignsearch.intervals import UNIT, PairedDifference, correlation_interval, paired_difference, student_t
from alignsearch.tables import markdown_table

Rows = list[dict[str, Any]]
SHARES_DIFFERENCE = (-1.0, 1.0)
"""The range of a difference of two shares (IIAs), which its interval is clipped to."""


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


def by_seed(rows: Rows, key: str = "iia", **where: Any) -> dict[Any, float]:
    """Per seed, the mean of ``key`` over the rows matching ``where`` (:func:`values`); rows without a
    seed count as one seed, None.

    >>> by_seed([{"seed": 1, "iia": 0.8}, {"seed": 1, "iia": 1.0}, {"seed": 2, "iia": 0.7}])
    {1: 0.9, 2: 0.7}
    """
    seeds: dict[Any, Rows] = {}
    for row in rows:
        seeds.setdefault(row.get("seed"), []).append(row)
    found = {seed: values(mine, key, **where) for seed, mine in seeds.items()}
    return {seed: statistics.fmean(xs) for seed, xs in found.items() if xs}


def paired(
    a: dict[Any, float], b: dict[Any, float], bounds: tuple[float, float] | None = SHARES_DIFFERENCE
) -> PairedDifference | None:
    """``a - b`` over the seeds both have (``{seed: value}``, :func:`by_seed`): the mean difference, its
    95% interval (Student's t, clipped to ``bounds``) and the seeds paired; None where no seed has both.

    >>> paired({0: 0.95, 1: 0.90, 2: 0.99, 3: 0.5}, {0: 0.64, 1: 0.68, 2: 0.59})
    PairedDifference(mean=0.31, low=0.086428, high=0.533572, p=0.0269645, n=3)
    """
    seeds = [s for s in a if s in b]
    if not seeds:
        return None
    return paired_difference([a[s] for s in seeds], [b[s] for s in seeds], bounds=bounds)


def difference(found: PairedDifference | None) -> str:
    """A difference as a verdict states it beside its threshold: ``difference 0.310 [0.086, 0.534], n=3``;
    one seed, the difference alone (no interval); ``no seed has both`` where none was paired.

    >>> difference(paired({0: 0.95, 1: 0.90, 2: 0.99}, {0: 0.64, 1: 0.68, 2: 0.59}))
    'difference 0.310 [0.086, 0.534], n=3'
    >>> difference(paired({0: 0.9}, {0: 0.7})), difference(None)
    ('difference 0.200, n=1', 'no seed has both')
    """
    if found is None:
        return "no seed has both"
    if found.low is None or found.high is None:
        return f"difference {found.mean:.3f}, n={found.n}"
    return f"difference {found.mean:.3f} [{found.low:.3f}, {found.high:.3f}], n={found.n}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """The lines of a findings table (:func:`alignsearch.tables.markdown_table`)."""
    return markdown_table(header, rows, pad=False).split("\n")


def is_count(row: dict) -> bool:
    return row.get("variable") == "count" and row.get("direction", "0>0") == "0>0"


def run_of(row: dict[str, Any]) -> Any:
    """A run's alignment seed within its model: ``alignment_seed``, or the model's ``seed`` where the run
    had none (one run per model, drawn from the model's seed)."""
    return row.get("alignment_seed", row.get("seed"))


def correlation_line(r: float | None, n: int, groups: int = 1) -> str:
    """``r = +0.63 [+0.17, +0.86] (n=15)``: a Pearson r with its 95% interval (Fisher's z;
    :func:`alignsearch.intervals.correlation_interval`); ``r = - (n=2)`` where it has none.

    >>> correlation_line(0.63, 15), correlation_line(0.4, 3), correlation_line(None, 2)
    ('r = +0.63 [+0.17, +0.86] (n=15)', 'r = +0.40 (n=3)', 'r = - (n=2)')
    """
    if r is None:
        return f"r = - (n={n})"
    bounds = correlation_interval(r, n, groups)
    shown = f" [{bounds[0]:+.2f}, {bounds[1]:+.2f}]" if bounds else ""
    return f"r = {r:+.2f}{shown} (n={n})"


def within_and_between(rows: Rows, x: str, y: str, group: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """The correlation of ``x`` with ``y`` split into its part within groups (each group's points centred
    on the group's means, pooled: how runs of one model co-vary) and between groups (the groups' means:
    how models co-vary), each with its number of points and groups.

    >>> rows = [{"m": m, "x": m + d, "y": 2 * m - d} for m in (0, 1, 2) for d in (-0.1, 0.1)]
    >>> found = within_and_between(rows, "x", "y", lambda r: r["m"])
    >>> round(found["within"], 6), round(found["between"], 6), found["n_within"], found["groups"]
    (-1.0, 1.0, 6, 3)
    """
    groups: dict[Any, list[tuple[float, float]]] = {}
    for row in rows:
        if isinstance(row.get(x), int | float) and isinstance(row.get(y), int | float):
            groups.setdefault(group(row), []).append((float(row[x]), float(row[y])))
    centred, means = [], []
    for points in groups.values():
        mx, my = statistics.fmean(p[0] for p in points), statistics.fmean(p[1] for p in points)
        means.append((mx, my))
        if len(points) > 1:
            centred += [(px - mx, py - my) for px, py in points]
    within_groups = sum(1 for points in groups.values() if len(points) > 1)
    return {
        "within": _pearson(centred),
        "n_within": len(centred),
        "within_groups": within_groups,
        "between": _pearson(means),
        "groups": len(groups),
    }


def _pearson(points: Sequence[tuple[float, float]]) -> float | None:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if len(points) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    return statistics.correlation(xs, ys)
