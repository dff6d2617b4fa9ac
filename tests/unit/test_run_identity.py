"""A run folder's identity (``run.json``, ``results.json``'s ``identity``): the digest of its settings
changes with every setting that changes its results, and with no other (the same command run again on
other models: ``commands/test_run_alignment.py``)."""

from __future__ import annotations

from tests.helpers import (
    compose_config,
)


def test_run_identity_ignores_only_settings_that_do_not_change_results() -> None:
    from alignsearch.models import GRU
    from alignsearch.search.run import run_identity
    from alignsearch.search.spec import RunModel
    from alignsearch.settings import AlignmentSettings, RunSettings

    model = RunModel(GRU(8, d_model=16), "multiobject/gru/seed0", None, "0" * 64, {"task": "multiobject"})

    def digest(*overrides: str) -> str:
        cfg = compose_config("run_alignment", list(overrides))
        a, run = AlignmentSettings.parse(cfg.alignment), RunSettings.parse(cfg)
        return run_identity([model], a, run, None)["settings_sha256"]

    base = digest()
    for same in ("alignment.prefix_cache=false", "alignment.prefix_cache_mb=10", "alignment.eval_batch_size=7",
                 "hardware.threads=1", "logger=wandb", "min_task_accuracy=0.2"):  # fmt: skip
        assert digest(same) == base, same
    for other in ("alignment.lr=0.1", "alignment.accumulate=2", "alignment.controls=[shuffled]", "n_units=8"):
        assert digest(other) != base, other
