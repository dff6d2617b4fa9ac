"""The papers' findings: the grids behind each claim, the claims with the thresholds they are judged by
(fixed before any run), the judging, and the page (``FINDINGS.md``, published as ``docs/findings.md``).

One concept a module: :mod:`~alignsearch.findings.grids` (each grid's ``conf/experiment`` preset, the
sizes, running a grid and reading its rows), :mod:`~alignsearch.findings.claims` (the thresholds, the
claims and their judges), :mod:`~alignsearch.findings.stats` (what a judge measures with: means over
seeds and differences of two conditions over the same seeds, with their 95% intervals),
:mod:`~alignsearch.findings.judging` (every claim judged, its verdict in words),
:mod:`~alignsearch.findings.page` (the page and publishing it) and :mod:`~alignsearch.findings.record`
(the wall time of the sittings that ran the grids). The command is ``python -m alignsearch.reproduce``
(:mod:`alignsearch.cli.reproduce`)::

    text = findings(Path("multirun/reproduce/small"), "small", seconds=None, command=None)
"""

from alignsearch.findings.claims import (
    ABOVE_FLOOR,
    CL_IIA_TOLERANCE,
    CLAIMS,
    COUNT_IIA,
    DIFFERENCE,
    DIRECTIONS,
    DIVERGENCE_HEADER,
    FEW_UNITS,
    FEW_UNITS_SHARE,
    FORMS,
    MAS_ALIGNED,
    MODEL_MARGIN,
    SEED_SPREAD,
    SELECTIVITY,
    TRACKING_R,
    UNTRAINED_CEILING,
    Claim,
    Finding,
    judge_controls,
    judge_count,
    judge_divergence,
    judge_mas,
    judge_n_units,
    judge_training,
    judge_transformer,
    judge_upup,
    judge_variants,
    per_seed,
    position_table,
    seed_means,
)
from alignsearch.findings.grids import (
    GRIDS,
    SIZES,
    grid_names,
    grid_rows,
    has_runs,
    run_grid,
    run_grids,
    selected_grids,
)
from alignsearch.findings.judging import judge_claims, verdict
from alignsearch.findings.page import NOTES_MARKER, findings, publish
from alignsearch.findings.record import RUN_RECORD, add_sitting, read_record
from alignsearch.findings.stats import (
    SHARES_DIFFERENCE,
    Rows,
    by_seed,
    difference,
    is_count,
    mean,
    paired,
    summary,
    table,
    values,
)

__all__ = [
    "ABOVE_FLOOR", "CLAIMS", "CL_IIA_TOLERANCE", "COUNT_IIA", "DIFFERENCE", "DIRECTIONS", "DIVERGENCE_HEADER",
    "FEW_UNITS", "FEW_UNITS_SHARE", "FORMS", "GRIDS", "MAS_ALIGNED", "MODEL_MARGIN", "NOTES_MARKER",
    "RUN_RECORD", "SEED_SPREAD", "SELECTIVITY", "SHARES_DIFFERENCE", "SIZES", "TRACKING_R", "UNTRAINED_CEILING", "Claim", "Finding",
    "Rows", "add_sitting", "by_seed", "difference", "findings", "grid_names", "grid_rows", "has_runs", "is_count", "judge_claims",
    "judge_controls", "judge_count", "judge_divergence", "judge_mas", "judge_n_units", "judge_training",
    "judge_transformer", "judge_upup", "judge_variants", "mean", "paired", "per_seed", "position_table",
    "publish", "read_record", "run_grid", "run_grids", "seed_means", "selected_grids", "summary", "table", "values", "verdict",
]  # fmt: skip
