"""Train a task model in a working folder: Lightning loop, checkpoints, resume, final evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from alignsearch.engine.accelerator import check_accelerator
from alignsearch.engine.callbacks import SaveOnSignal, StopAtAccuracy, TrainClock
from alignsearch.engine.trainer import LAST_CHECKPOINT, make_trainer, quiet_lightning, use_threads
from alignsearch.settings import HardwareSettings, TrainingSettings
from alignsearch.training.data import TaskDataModule
from alignsearch.training.task_module import TaskModelModule


def fit_task_model(
    task,
    model,
    work_dir: Path,
    *,
    settings: TrainingSettings,
    hardware: HardwareSettings,
    seed: int,
    resume_from: Path | None = None,
    loggers: list | bool = False,
    callbacks: Sequence[L.Callback] = (),
) -> dict[str, float]:
    """Train ``model`` on ``task`` with ``settings`` on ``hardware``, its data drawn from ``seed``; return
    the final metrics.

    Lightning checkpoints go to ``work_dir/checkpoints``; ``resume_from`` continues a run from one.
    ``callbacks`` are added to the trainer's own (checkpointing, stopping, clock, progress bar).
    """
    check_accelerator(hardware)
    quiet_lightning()
    use_threads(hardware)
    data = TaskDataModule(
        task,
        seed=seed,
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
