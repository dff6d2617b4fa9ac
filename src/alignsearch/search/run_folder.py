"""What an alignment run writes into its folder (``outputs/run_alignment/<overrides>/``, or a sweep's job
folder), by name: the run writes these, the report and the findings read them."""

RESULTS = "results.json"
"""The run's records, settings and identity (written last: a run without it is unfinished)."""
RUN = "run.json"
RUN_LOCK = "run.lock"
"""Held by the process running in the folder (a second one waits for it)."""
SIMILARITY = "similarity.json"
SIMILARITY_TABLE = "similarity.md"
ALIGNMENT = "alignment.pt"
"""The trained alignment (:mod:`alignsearch.search.saved`)."""
METRICS = "metrics.csv"
"""The IIA at every evaluation (the learning curves)."""
SUPERSEDED = "superseded"
"""``superseded/<n>/``: the outputs of a run of other models or settings that used the folder before
(kept, never read as this run's)."""
RUN_OUTPUTS = (
    RESULTS,
    "controls",
    "predictions",
    METRICS,
    ALIGNMENT,
    SIMILARITY,
    SIMILARITY_TABLE,
    "checkpoints",
    "logs",
    "wandb",
)
"""What a run writes into its folder (moved aside together when it belonged to other models)."""
