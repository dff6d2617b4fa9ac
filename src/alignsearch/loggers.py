"""Experiment loggers that work without a network."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any


def wandb_credentials_present() -> bool:
    """True when W&B could log online: an API key in the environment or in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(Path.home() / ".netrc").authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_logger(run_config: dict[str, Any] | None = None, **kwargs: Any):
    """A Lightning ``WandbLogger``; offline (say so in one line) unless W&B can log online.

    ``WANDB_MODE`` wins when set. Offline runs are uploaded later with ``wandb sync <run folder>``.
    ``run_config`` (a flat dict of the run's choices) becomes the run's W&B config, so that dashboards can
    group and filter by seed, layer, n_units, variable, ...; ``group``, ``job_type``, ``tags`` and the rest
    go to ``wandb.init``.
    """
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    mode = os.environ.get("WANDB_MODE")
    offline = mode in ("offline", "dryrun") if mode else not wandb_credentials_present()
    where = Path(kwargs.get("save_dir", "."))
    if offline:
        print(f"wandb: logging offline to {where / 'wandb'} (upload later with `wandb sync`)", flush=True)
    where.mkdir(parents=True, exist_ok=True)
    logger = WandbLogger(offline=offline, config=run_config, settings=wandb.Settings(silent=True), **kwargs)
    # Lightning hands wandb.init ``anonymous=None`` even when unset; recent wandb warns about any value of
    # that deprecated setting (it has no effect), so it is left out. Offline runs need no credentials.
    init = getattr(logger, "_wandb_init", {})
    if "anonymous" in init and init["anonymous"] is None:
        del init["anonymous"]
    return logger


DIVERGENCE_METRICS = ("divergence", "divergence_floor", "divergence_top", "divergence_top_floor")
"""A record's divergence measures (``alignsearch.search.records.DIVERGENCE_KEYS``), logged as summaries."""
CONTROL_KEYS = ("iia_control_", "divergence_control_")
"""How a record's JSON form names each control's IIA and divergence (``alignsearch.search.records``'s
``CONTROL_PREFIX`` and ``CONTROL_DIVERGENCE_PREFIX``), logged as summaries too."""
SUMMARY_METRICS = ("iia", "iia_heldout", "iia_test", "token_iia", "iia_step0", *DIVERGENCE_METRICS)
"""The measures of a record logged as W&B summaries (with each control's IIA and divergence)."""


def summary_values(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The W&B summary values of an alignment's final records (their JSON form):
    ``final/<direction>/<variable>/<measure>`` for each measure a record has, the controls' included
    (``iia_control_<name>``, ``divergence_control_<name>``).

    >>> summary_values([{"direction": "0>0", "variable": "count", "iia": 0.9, "iia_test": None,
    ...                  "iia_control_shuffled": 0.1, "divergence_control_shuffled": 0.4}])
    {'final/0>0/count/iia': 0.9, 'final/0>0/count/iia_control_shuffled': 0.1, 'final/0>0/count/divergence_control_shuffled': 0.4}
    """
    out: dict[str, Any] = {}
    for r in records:
        keys = [*SUMMARY_METRICS, *(k for k in r if k.startswith(CONTROL_KEYS))]
        out |= {f"final/{r['direction']}/{r['variable']}/{k}": r[k] for k in keys if r.get(k) is not None}
    return out


def log_final_records(loggers: list, records: list[dict[str, Any]]) -> None:
    """Put an alignment's final records into each W&B run: summary values and a ``records`` table."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        import wandb  # only where a W&B run exists

        run = logger.experiment
        for key, value in summary_values(records).items():
            run.summary[key] = value
        columns = sorted({k for r in records for k in r})
        run.log(
            {"records": wandb.Table(columns=[*columns], data=[[r.get(c) for c in columns] for r in records])}
        )
        run.finish()
