"""What the report measures: its columns (the splits' IIA, each control's, the selectivity, the
divergence, the target's task accuracy, the models' similarity) and how ``report.md`` heads them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from alignsearch.controls import CONTROLS
from alignsearch.intervals import UNIT
from alignsearch.search.records import (
    CONTROL_DIVERGENCE_PREFIX,
    CONTROL_PREFIX,
    DIVERGENCE_KEYS,
    SPLIT_METRICS,
)

BASE_METRICS = SPLIT_METRICS
SELECTIVITY = "selectivity"
"""IIA (validation) minus the best control of the record."""


def control_names(rows: Sequence[dict[str, Any]] = ()) -> list[str]:
    """The controls a report has columns for: every registered one (:data:`alignsearch.controls.CONTROLS`,
    in the order registered), then those ``rows`` hold that are not registered here (a control of the
    run's own, registered where it ran), by name."""
    held = {k.removeprefix(CONTROL_PREFIX) for row in rows for k in row if k.startswith(CONTROL_PREFIX)}
    return [*CONTROLS, *sorted(held - set(CONTROLS))]


TASK_ACC = "task_acc"
"""The trial accuracy of a record's target model on its task (``results.json``'s ``task_accuracy``)."""
PAIR_METRICS = ("cka_linear", "cka_rbf", "cka_dist_cos", "rsa_cos_spearman")
"""The similarity of a run's two models (``similarity.json``): one value per run, whatever the direction."""


def extra_metrics(rows: Sequence[dict[str, Any]] = ()) -> tuple[str, ...]:
    """The measures beside :data:`BASE_METRICS`: each control's validation IIA (``iia_control_<name>``, for
    the controls of :func:`control_names`), the selectivity, the divergence, each control's divergence at
    the site (records of schema 4 on), the target's task accuracy and the models' similarity."""
    names = control_names(rows)
    return (
        *(f"{CONTROL_PREFIX}{name}" for name in names),
        SELECTIVITY,
        *DIVERGENCE_KEYS,
        *(f"{CONTROL_DIVERGENCE_PREFIX}{name}" for name in names),
        TASK_ACC,
        *PAIR_METRICS,
    )


TITLES = {
    "iia": "IIA val",
    "iia_heldout": "IIA heldout",
    "iia_test": "IIA test",
    TASK_ACC: "target trial acc",
}
"""How ``report.md`` heads a measure's column (the others: by its name)."""
ROW_KEYS = ("direction", "variable")


def metrics_present(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The measures the rows hold: the splits' IIA always, then each of :func:`extra_metrics` some row has."""
    return list(BASE_METRICS) + [m for m in extra_metrics(rows) if any(r.get(m) is not None for r in rows)]


SHARES = (*SPLIT_METRICS, "token_iia", "iia_step0", TASK_ACC, "cka_linear", "cka_rbf")
"""Measures that are shares, from 0 to 1 (each control's IIA too), or that lie there (kernel CKA)."""


def measure_range(metric: str) -> tuple[float, float] | None:
    """The values a measure can take, which its interval over seeds is clipped to: 0 to 1 for a share
    (an IIA, an accuracy, a kernel CKA), -1 to 1 for the selectivity, an RSA correlation and the CKA of
    distance matrices, 0 up for a divergence; None where not known (a measure of another kind).

    >>> measure_range("iia_control_shuffled"), measure_range("selectivity"), measure_range("divergence_top")
    ((0.0, 1.0), (-1.0, 1.0), (0.0, inf))
    """
    if metric in SHARES or metric.startswith(CONTROL_PREFIX):
        return UNIT
    if metric == SELECTIVITY or metric.startswith(("rsa_", "cka_dist_")):
        return (-1.0, 1.0)
    if metric in DIVERGENCE_KEYS or metric.startswith(CONTROL_DIVERGENCE_PREFIX):
        return (0.0, math.inf)
    return None


def title(metric: str) -> str:
    """``iia`` -> ``IIA val``, ``iia_control_shuffled`` -> ``control: shuffled``,
    ``divergence_control_shuffled`` -> ``control divergence: shuffled``, ``task_acc`` -> ``target trial
    acc``."""
    if metric.startswith(CONTROL_PREFIX):
        return f"control: {metric.removeprefix(CONTROL_PREFIX)}"
    if metric.startswith(CONTROL_DIVERGENCE_PREFIX):
        return f"control divergence: {metric.removeprefix(CONTROL_DIVERGENCE_PREFIX)}"
    return TITLES.get(metric, metric)
