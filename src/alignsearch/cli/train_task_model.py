"""``train_task_model.py``: train one task model into the zoo (or report the entry that is there)."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from alignsearch import zoo
from alignsearch.cli.checks import check_train_config
from alignsearch.search.results import RunStatus
from alignsearch.tables import markdown_table


def make_loggers(cfg: DictConfig, **wandb_run: Any) -> list:
    """Every logger configured under ``cfg.logger`` (a name -> ``_target_`` mapping); ``wandb_run``
    (``group``, ``job_type``, ``tags``, ``run_config``) goes to a W&B logger only."""
    loggers = []
    for name, node in (cfg.get("logger") or {}).items():
        loggers.append(instantiate(node, _convert_="all", **(wandb_run if name == "wandb" else {})))
    return loggers


def main(cfg: DictConfig) -> dict:
    """Train (or find) the zoo entry; return its path and metrics (what a sweep records)."""
    req = check_train_config(cfg)  # every setting checked before any work
    existed = req.path.is_dir()
    if existed:
        entry = zoo.checked_load(req)
    else:
        wandb_run = {
            "group": f"{req.task.name}/{req.model.name}/train",
            "job_type": "train",
            "tags": [req.task.name, req.model.name, f"seed{cfg.seed}"],
            "run_config": {"task": req.task.name, "model": req.model.name, "seed": int(cfg.seed)},
        }
        entry = zoo.get_or_train(req, loggers=make_loggers(cfg, **wandb_run))
    show(entry, "already in the zoo" if existed else "trained")
    status = RunStatus.ALREADY_DONE if existed else RunStatus.DONE
    return {"status": status, "path": str(entry.path), **entry.metrics}


def show(entry: zoo.ZooEntry, status: str) -> None:
    """The entry's path, its accuracy per split as a table (:func:`alignsearch.tables.markdown_table`) and
    what its training took::

        trained: zoo/multiobject/gru/seed0
        | split   | trial acc | token acc |
        |---------|-----------|-----------|
        | val     | 0.9961    | 0.9995    |
        | heldout | 0.9844    | 0.9980    |
        1500 steps, 41.3 s of training
    """
    rows = [
        [split, f"{entry.metrics[f'{split}_trial_acc']:.4f}", f"{entry.metrics[f'{split}_token_acc']:.4f}"]
        for split in ("val", "heldout")
        if f"{split}_trial_acc" in entry.metrics
    ]
    took = f"{entry.metrics['steps']} steps, {entry.metrics['train_seconds']:.1f} s of training"
    table = markdown_table(["split", "trial acc", "token acc"], rows)
    print(f"{status}: {entry.path}", table, took, sep="\n", flush=True)
