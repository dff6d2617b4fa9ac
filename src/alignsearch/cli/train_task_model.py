"""``train_task_model.py``: train one task model into the zoo (or report the entry that is there)."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from alignsearch import zoo

GROUPS = ("task", "model", "hardware", "logger", "training")


def make_loggers(cfg: DictConfig) -> list:
    """Every logger configured under ``cfg.logger`` (a name -> ``_target_`` mapping)."""
    return [instantiate(node) for node in (cfg.get("logger") or {}).values()]


def main(cfg: DictConfig) -> zoo.ZooEntry:
    req = zoo.request(cfg)  # every setting checked before any work
    existed = req.path.is_dir()
    entry = zoo.load(req.path, req.task) if existed else zoo.get_or_train(cfg, loggers=make_loggers(cfg))
    show(entry, "already in the zoo" if existed else "trained")
    return entry


def show(entry: zoo.ZooEntry, status: str) -> None:
    print(f"{status}: {entry.path}", flush=True)
    table = Table()
    for column in ("split", "trial acc", "token acc"):
        table.add_column(column)
    for split in ("val", "heldout"):
        if f"{split}_trial_acc" in entry.metrics:
            table.add_row(
                split,
                f"{entry.metrics[f'{split}_trial_acc']:.4f}",
                f"{entry.metrics[f'{split}_token_acc']:.4f}",
            )
    table.caption = f"{entry.metrics['steps']} steps, {entry.metrics['train_seconds']:.1f} s of training"
    Console().print(table)
