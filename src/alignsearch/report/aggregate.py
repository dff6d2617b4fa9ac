"""The report's numbers from its rows: the settings that vary and those every run shares, the mean,
standard deviation and count over seeds of each configuration, and correlations."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from alignsearch.report.measures import BASE_METRICS, ROW_KEYS, TASK_ACC


def varying_keys(rows: Sequence[dict[str, Any]], candidates: Iterable[str]) -> list[str]:
    """The config keys whose values differ between rows (in ``candidates`` order)."""
    return [k for k in candidates if len({r.get(k) for r in rows}) > 1]


def shared_settings(rows: Sequence[dict[str, Any]], config_keys: Iterable[str]) -> dict[str, Any]:
    """The settings that have one value in every row (a run without one counts as a different value)."""
    return {k: rows[0].get(k) for k in config_keys if len({r.get(k) for r in rows}) == 1}


def table_keys(rows: Sequence[dict[str, Any]], config_keys: Iterable[str]) -> list[str]:
    """The settings that vary, less those another column implies.

    ``variables`` when each run aligns one variable (the ``variable`` column says it), ``site`` when the
    layer varies (the site follows from the layer).
    """
    varying = varying_keys(rows, config_keys)
    if all(str(r.get("variables")) == str(r.get("variable")) for r in rows):
        varying = [k for k in varying if k != "variables"]
    if "layer" in varying and "site" in varying:
        varying = [k for k in varying if k != "site"]
    return varying


def summarize(
    rows: Sequence[dict[str, Any]],
    config_keys: Sequence[str],
    metrics: Sequence[str] = BASE_METRICS,
    row_keys: Sequence[str] = ROW_KEYS,
) -> list[dict[str, Any]]:
    """Mean, standard deviation and count over seeds per (configuration, ``row_keys``: direction and
    variable). The standard deviation of a single value is None: one run shows no spread."""
    keys = [k for k in config_keys if k != "seed"] + list(row_keys)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in keys), []).append(row)
    summary = []
    for key, members in groups.items():
        out = dict(zip(keys, key, strict=True))
        out["n"] = len(members)
        for metric in metrics:
            values = [m[metric] for m in members if m.get(metric) is not None]
            out[f"{metric}_mean"] = statistics.fmean(values) if values else None
            out[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else None
        summary.append(out)
    summary.sort(key=lambda row: tuple(natural_order(row[k]) for k in keys))
    return summary


def natural_order(value: Any) -> tuple[int, float, str]:
    """Numbers in numeric order, before words (``embedding``, ``count``)."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson correlation, or None with fewer than three points or no spread."""
    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    return statistics.correlation(xs, ys)


def training_correlation(rows: Sequence[dict[str, Any]]) -> tuple[float | None, int]:
    """Pearson r between IIA and task accuracy over the trained records of snapshot runs."""
    points = [
        (r["iia"], r[TASK_ACC])
        for r in rows
        if r.get("snapshot") is not None and r.get(TASK_ACC) is not None and r.get("trained", True)
    ]
    return pearson([p[0] for p in points], [p[1] for p in points]), len(points)
