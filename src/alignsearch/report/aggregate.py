"""The report's numbers from its rows: a partner seed derived from the seed folded into the seed, the
settings that vary and those every run shares, the mean, standard deviation, 95% interval and count over
seeds of each configuration, and correlations."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from alignsearch.intervals import student_t
from alignsearch.report.measures import BASE_METRICS, ROW_KEYS, TASK_ACC, measure_range
from alignsearch.search.records import CONTROL_INTERVAL_PREFIXES, CONTROL_PREFIX, INTERVALS
from alignsearch.settings import derived_partner_seed

SEEDS = ("seed", "alignment_seed")
"""What tells two runs of one configuration apart: the model's seed and, where set, the alignment's own
(``alignment_seed``: several runs of one model). The report pools over both: ``n`` counts runs."""
PARTNER_SEED = "partner_seed"
"""The partner's seed in a two-model run's settings (``results.json``'s ``config``)."""
DERIVED_PARTNER_SEED = "seed + 1"
"""What ``partner_seed`` reads in the report where it is part of the seed (:func:`fold_partner_seeds`)."""


def fold_partner_seeds(rows: Sequence[dict[str, Any]], config_keys: Iterable[str]) -> list[dict[str, Any]]:
    """The rows with each partner seed that follows from the seed counted as part of the seed.

    A two-model run records its partner's seed, ``partner_seed``: by default (``partner.seed=null``) the
    one derived from ``seed`` (:func:`alignsearch.settings.derived_partner_seed`, seed + 1), so a sweep
    over ``seed`` varies it too; read as a setting of its own, it would split each configuration into runs
    of one seed. The rule, per configuration (the rows whose settings are all alike but ``seed`` and
    ``partner_seed``): when every partner seed among them is the one derived from its row's seed,
    ``partner_seed`` reads :data:`DERIVED_PARTNER_SEED` in each (a setting they all share), and the rows
    group over seeds. Where any partner seed of the configuration is another (``partner.seed=7``, or a
    swept ``partner.seed``), every one keeps its number, a setting like the others: a fixed partner
    (``-m seed=1,2,3 partner.seed=2``) still groups over seeds as its one value, partners of several
    seeds split. A partner seed set to the derived value names the same models, and counts as derived.
    Rows without a partner seed (one-model runs) are as they were.

    >>> rows = [{"seed": s, "partner_seed": s + 1, "iia": 0.9} for s in (1, 2)]
    >>> [r["partner_seed"] for r in fold_partner_seeds(rows, ["seed", "partner_seed"])]
    ['seed + 1', 'seed + 1']
    >>> fixed = [{"seed": s, "partner_seed": 2} for s in (1, 2, 3)]  # seed 1's partner is seed + 1 too
    >>> [r["partner_seed"] for r in fold_partner_seeds(fixed, ["seed", "partner_seed"])]
    [2, 2, 2]
    """
    others = [k for k in config_keys if k not in (*SEEDS, PARTNER_SEED)]

    def configuration(row: dict[str, Any]) -> tuple:
        return tuple(row.get(k) for k in others)

    partnered = [r for r in rows if r.get(PARTNER_SEED) is not None]
    set_otherwise = {configuration(r) for r in partnered if not _partner_seed_derived(r)}
    return [
        {**r, PARTNER_SEED: DERIVED_PARTNER_SEED}
        if r.get(PARTNER_SEED) is not None and configuration(r) not in set_otherwise
        else r
        for r in rows
    ]


def _partner_seed_derived(row: dict[str, Any]) -> bool:
    """Whether a row's partner seed is the one derived from its seed."""
    seed, partner = row.get("seed"), row.get(PARTNER_SEED)
    if type(seed) is not int or type(partner) is not int:  # not a bool, not a missing one
        return False
    return partner == derived_partner_seed(seed)


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
    """Mean, standard deviation, 95% interval and count over seeds per (configuration, ``row_keys``:
    direction and variable): a row of the configuration's settings and ``row_keys``, ``n`` (its runs),
    then for each metric ``<metric>_mean``, ``_std``, ``_low``, ``_high``, ``_n`` (the runs that have the
    measure) and, for an IIA of :data:`~alignsearch.search.records.INTERVALS`, ``_pairs`` (the pairs
    each run measured it on, where the runs agree).

    The interval (:func:`interval`): over seeds, Student's t, clipped to the measure's range; of a
    single value, the run's own interval over its pairs where it has one (an IIA of a record of schema 5
    on), else none. The standard deviation of a single value is None: one run shows no spread. A partner
    seed varies with the seed only in rows :func:`fold_partner_seeds` has not seen (the report folds
    them).

    >>> rows = [{"seed": s, "iia": v} for s, v in enumerate([0.95, 0.97, 0.96, 0.98, 0.94])]
    >>> row = summarize(rows, ["seed"], ["iia"], row_keys=())[0]
    >>> row["n"], round(row["iia_mean"], 6), row["iia_low"], row["iia_high"], row["iia_n"]
    (5, 0.96, 0.940368, 0.979632, 5)
    """
    keys = [k for k in config_keys if k not in SEEDS] + list(row_keys)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in keys), []).append(row)
    summary = []
    for key, members in groups.items():
        out = dict(zip(keys, key, strict=True))
        out["n"] = len(members)
        for metric in metrics:
            measured = [m for m in members if m.get(metric) is not None]
            values = [m[metric] for m in measured]
            out[f"{metric}_mean"] = statistics.fmean(values) if values else None
            out[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else None
            out[f"{metric}_low"], out[f"{metric}_high"] = interval(metric, measured)
            out[f"{metric}_n"] = len(values)
            if metric in INTERVALS:
                pairs = {m.get(INTERVALS[metric][0]) for m in measured}
                out[f"{metric}_pairs"] = pairs.pop() if len(pairs) == 1 else None
        summary.append(out)
    summary.sort(key=lambda row: tuple(natural_order(row[k]) for k in keys))
    return summary


def interval(metric: str, measured: Sequence[dict[str, Any]]) -> tuple[float | None, float | None]:
    """The 95% interval of a measure's mean over the rows that have it: over seeds (Student's t, clipped
    to the measure's range, :func:`~alignsearch.report.measures.measure_range`) for two or more; for one,
    its interval over pairs where the row has one (``iia_low``, ``iia_high``, ...); else none.

    >>> interval("iia", [{"iia": 0.9}, {"iia": 1.0}])
    (0.31469, 1.0)
    >>> interval("iia", [{"iia": 0.9, "iia_low": 0.786398, "iia_high": 0.956524}]), interval("iia", [{"iia": 0.9}])
    ((0.786398, 0.956524), (None, None))
    >>> interval("iia_control_shuffled", [{"iia_control_shuffled": 0.1, "n_pairs_control_shuffled": 50,
    ...                                    "iia_low_control_shuffled": 0.043, "iia_high_control_shuffled": 0.214}])
    (0.043, 0.214)
    """
    if len(measured) > 1:
        _, low, high = student_t([m[metric] for m in measured], bounds=measure_range(metric))
        return low, high
    if len(measured) == 1 and metric in INTERVALS:
        _, low_key, high_key = INTERVALS[metric]
        return measured[0].get(low_key), measured[0].get(high_key)
    if len(measured) == 1 and metric.startswith(CONTROL_PREFIX):  # a control's, over its trials (schema 6)
        name = metric.removeprefix(CONTROL_PREFIX)
        _, low_prefix, high_prefix = CONTROL_INTERVAL_PREFIXES
        return measured[0].get(f"{low_prefix}{name}"), measured[0].get(f"{high_prefix}{name}")
    return None, None


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
