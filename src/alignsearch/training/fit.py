"""Train a task model in a working folder: Lightning loop, checkpoints, resume, final evaluation."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.plugins.environments import SLURMEnvironment

from alignsearch.errors import ConfigError
from alignsearch.training.callbacks import StopAtAccuracy, TrainClock
from alignsearch.training.data import TaskDataModule
from alignsearch.training.interrupt import SaveOnSignal
from alignsearch.training.task_module import TaskModelModule, check_training_settings

LAST_CHECKPOINT = "last.ckpt"


def check_checkpoint(path: Path, key: str = "ckpt_path") -> Path:
    """``path`` if it is a readable Lightning checkpoint, else a one-line ConfigError."""
    if not path.is_file():
        raise ConfigError(key, str(path), "an existing Lightning checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any failure to read means the file is unusable
        raise ConfigError(
            key,
            str(path),
            f"a readable checkpoint (it is corrupt: {type(e).__name__}); delete it to start over",
        ) from None
    if not isinstance(state, dict) or "state_dict" not in state or "global_step" not in state:
        raise ConfigError(key, str(path), "a Lightning checkpoint (no state_dict/global_step in it)")
    return path


def quiet_lightning() -> None:
    """Silence Lightning's advice that does not apply here (workers for in-memory data, tips)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings(
        "ignore", message=".*module\\(s\\) in eval mode.*"
    )  # frozen task models, on purpose


def make_trainer(
    hardware: Any,
    *,
    max_steps: int,
    val_every: int,
    callbacks: list,
    loggers: list | bool,
    root: Path,
    **extra: Any,
) -> L.Trainer:
    """A step-based Lightning trainer on ``hardware`` (validation every ``val_every`` steps, progress bar optional)."""
    show_progress = bool(hardware.get("progress_bar", True))
    plugins = []
    if hardware.get("slurm_requeue") is False and SLURMEnvironment.detect():
        plugins.append(SLURMEnvironment(auto_requeue=False))  # submitit requeues; Lightning must not
    return L.Trainer(
        accelerator=hardware.accelerator,
        devices=hardware.devices,
        precision=hardware.precision,
        max_steps=max_steps,
        val_check_interval=val_every,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        logger=loggers,
        callbacks=[*callbacks, RichProgressBar(leave=False)] if show_progress else list(callbacks),
        enable_progress_bar=show_progress,
        enable_model_summary=False,
        default_root_dir=root,
        plugins=plugins or None,
        **extra,
    )


def fit_task_model(
    cfg: Any,
    task,
    model,
    work_dir: Path,
    *,
    resume_from: Path | None = None,
    loggers: list | bool = False,
    callbacks: list[L.Callback] = (),
) -> dict[str, float]:
    """Train ``model`` on ``task`` with ``cfg.training`` and ``cfg.hardware``; return the final metrics.

    Lightning checkpoints go to ``work_dir/checkpoints``; ``resume_from`` continues a run from one.
    ``callbacks`` are added to the trainer's own (checkpointing, stopping, clock, progress bar).
    """
    settings, hardware = cfg.training, cfg.hardware
    check_training_settings(settings)
    quiet_lightning()
    if hardware.get("threads"):
        torch.set_num_threads(int(hardware.threads))
    data = TaskDataModule(
        task,
        seed=int(cfg.seed),
        batch_size=settings.batch_size,
        n_val=settings.n_val,
        n_heldout=settings.n_heldout,
        eval_batch_size=settings.eval_batch_size,
    )
    module = TaskModelModule(
        model,
        task.vocab,
        eval_splits=data.eval_splits,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        warmup_steps=settings.warmup_steps,
        loss_on=settings.loss_on,
    )
    clock = TrainClock()
    stopper = StopAtAccuracy("val/trial_acc", settings.stop_at, settings.stop_patience)
    trainer_callbacks = [
        ModelCheckpoint(
            dirpath=work_dir / "checkpoints",
            save_last=True,
            save_top_k=0,
            every_n_train_steps=settings.checkpoint_every,
        ),
        stopper,
        clock,
        *callbacks,
        SaveOnSignal(work_dir / "checkpoints" / LAST_CHECKPOINT),  # after the step's other callbacks
    ]
    trainer = make_trainer(
        hardware,
        max_steps=settings.max_steps,
        val_every=settings.val_every,
        callbacks=trainer_callbacks,
        loggers=loggers,
        root=work_dir,
        gradient_clip_val=settings.grad_clip or None,
    )
    trainer.fit(module, datamodule=data, ckpt_path=resume_from)
    results: dict[str, float] = {}
    for split_metrics in trainer.validate(module, datamodule=data, verbose=False):
        results.update({k.replace("/", "_"): float(v) for k, v in split_metrics.items()})
    results["steps"] = trainer.global_step
    results["train_seconds"] = round(clock.seconds, 2)
    results["stopped_at_threshold"] = stopper.hits >= settings.stop_patience
    return results
