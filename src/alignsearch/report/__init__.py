"""Turn a run or sweep folder into a table and plots: ``python -m alignsearch.report multirun/<...>``.

Every ``results.json`` under the folder (but those kept aside in a run's ``superseded/``, of other models
or settings) contributes one row per record (direction and variable), with
the run's settings, the trial accuracy of the record's target model on its task (as aligned: column
``target trial acc``, ``task_acc`` in ``report.csv``) and, for two-model runs, the similarity measures of
``similarity.json``. Rows that differ only in ``seed`` form one configuration; the report gives the mean,
standard deviation, 95% interval (Student's t) and count over seeds of each measure (a measure of one
run: its value alone, no standard deviation, and for an IIA its 95% interval over the run's pairs where
``results.json`` holds one). A two-model run's partner seed derived from its seed (``partner.seed=null``: seed +
1) is part of the seed: where every partner seed of a configuration is so derived, ``partner_seed`` reads
``seed + 1`` and splits nothing, so ``-m seed=1,2,3`` of MAS gives n = 3; a partner seed set otherwise is
a setting like any other (:func:`~alignsearch.report.aggregate.fold_partner_seeds`):

* ``report.md``: the settings shared by every run (a setting is shared when all runs have the same
  value, a list compared whole), then a markdown table whose columns are the settings that vary,
  ``direction`` (``source>target`` by model index), ``variable`` and the measures; for two-model runs a
  second table gives the similarity of the model pair (CKA, RSA: one row per configuration, over its
  runs, as they do not depend on the direction or variable); then the plots, and when there are any,
  three sections:

  - "Failed jobs": the jobs of each sweep whose latest row in its ``summary.csv`` says ``failed`` or
    ``interrupted`` (job folder, overrides, error or where the signal stopped it);
  - "Repeated runs": runs left out because a newer run has every setting and the seed the same (the
    same sweep run twice into two folders): each seed of a configuration counts once;
  - "Unreadable runs": every file that could not be read (a ``results.json``, which leaves its run out;
    a ``similarity.json`` or ``metrics.csv``, which leaves out what it adds; a ``summary.csv``), by path
    with the reason; each is also printed on stderr, one line per file;

* ``report.csv``: the numbers of the first table, unrounded (per measure ``_mean``, ``_std``, ``_low`` and
  ``_high`` (the 95% interval), ``_n`` (the runs that have it) and for an IIA ``_pairs``), with the pair's
  similarity measures on each of its rows;
* ``plots/*.png``: the validation IIA learning curves of every run with a ``metrics.csv`` (one line per run
  and trained direction/variable), and for what the folder holds: IIA against ``n_units`` per variable,
  IIA by layer, the MAS direction matrix as a heatmap, and IIA with task accuracy over training snapshots
  (with their correlation, also written into ``report.md``); a mean's error bars are its 95% interval
  (over seeds; for one run, over its pairs where known);
* with ``--compare <setting>=<a>,<b>``: a "Comparison" section of ``report.md`` and ``comparison.csv``,
  the two conditions over the same seeds (each run at ``a`` paired with the run at ``b`` of the same seed
  and every other setting): per configuration, record and measure, the mean difference ``a - b`` with its
  95% interval, the paired t-test's p-value and the seeds paired
  (:mod:`~alignsearch.report.compare`).

The package, one concept a module: :mod:`~alignsearch.report.reading` (what a folder holds: runs, learning
curves, failed jobs, unreadable files), :mod:`~alignsearch.report.measures` (the columns and their titles),
:mod:`~alignsearch.report.aggregate` (partner seeds of the seed, varying and shared settings, means over
seeds, correlations), :mod:`~alignsearch.report.compare` (two conditions over the same seeds),
:mod:`~alignsearch.report.render` (``report.md``'s tables and sections, ``report.csv``),
:mod:`~alignsearch.report.plots` (every plot, the scan's heatmap too) and :mod:`~alignsearch.report.build`
(:func:`report`: all of them, written into a folder). The command is :mod:`alignsearch.cli.report`.
"""

from __future__ import annotations

from typing import Any

from alignsearch.report.aggregate import (
    DERIVED_PARTNER_SEED,
    fold_partner_seeds,
    interval,
    natural_order,
    pearson,
    shared_settings,
    summarize,
    table_keys,
    training_correlation,
    varying_keys,
)
from alignsearch.report.build import (
    EXIT_ALL_JOBS_FAILED,
    EXIT_USAGE,
    PLOTS,
    CannotWrite,
    NothingToReport,
    nothing_to_report,
    report,
    write_failure,
)
from alignsearch.report.compare import (
    COMPARISON_CSV,
    CannotCompare,
    Compared,
    Comparison,
    compare,
    comparison_section,
    difference_cell,
)
from alignsearch.report.measures import (
    BASE_METRICS,
    PAIR_METRICS,
    ROW_KEYS,
    SELECTIVITY,
    TASK_ACC,
    TITLES,
    control_names,
    extra_metrics,
    measure_range,
    metrics_present,
)
from alignsearch.report.reading import (
    CURVE_COLUMNS,
    CURVE_SPLIT,
    TRUE_WORDS,
    Collected,
    FailedJob,
    Problem,
    Unreadable,
    collect,
    failed_jobs,
    read_curves,
    read_json,
    read_results,
    read_similarity,
)
from alignsearch.report.render import (
    CONTROL_DIVERGENCE_NOTE,
    INTERVALS_NOTE,
    cell,
    controls_note,
    failed_section,
    pair_section,
    repeated_section,
    summary_table,
    to_csv,
    to_markdown,
    unreadable_section,
)

PLOT_NAMES = (
    "curve_lines",
    "direction_heatmaps",
    "iia_curves",
    "scan_heatmap",
    "training_plot",
    "write_plots",
)
"""What :mod:`alignsearch.report.plots` offers here (imported when first asked for)."""
__all__ = [
    "BASE_METRICS",
    "CONTROL_DIVERGENCE_NOTE",
    "CURVE_COLUMNS",
    "COMPARISON_CSV",
    "CURVE_SPLIT",
    "DERIVED_PARTNER_SEED",
    "EXIT_ALL_JOBS_FAILED",
    "EXIT_USAGE",
    "INTERVALS_NOTE",
    "PAIR_METRICS",
    "PLOTS",
    "ROW_KEYS",
    "SELECTIVITY",
    "TASK_ACC",
    "TITLES",
    "TRUE_WORDS",
    "CannotCompare",
    "CannotWrite",
    "Collected",
    "Compared",
    "Comparison",
    "FailedJob",
    "NothingToReport",
    "Problem",
    "Unreadable",
    "cell",
    "collect",
    "compare",
    "comparison_section",
    "control_names",
    "controls_note",
    "difference_cell",
    "extra_metrics",
    "failed_jobs",
    "failed_section",
    "fold_partner_seeds",
    "interval",
    "measure_range",
    "metrics_present",
    "natural_order",
    "nothing_to_report",
    "pair_section",
    "pearson",
    "read_curves",
    "read_json",
    "read_results",
    "read_similarity",
    "repeated_section",
    "report",
    "shared_settings",
    "summarize",
    "summary_table",
    "table_keys",
    "to_csv",
    "to_markdown",
    "training_correlation",
    "unreadable_section",
    "varying_keys",
    "write_failure",
    *PLOT_NAMES,
]


def __getattr__(name: str) -> Any:
    """The plots' names (:mod:`alignsearch.report.plots`), imported when first asked for: matplotlib loads
    only when something is drawn."""
    if name in PLOT_NAMES:
        from alignsearch.report import plots

        return getattr(plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
