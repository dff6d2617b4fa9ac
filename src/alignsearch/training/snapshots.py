"""Snapshots of a task model's weights during training (``training.keep_steps``), to align a model at
several points of its training."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import lightning as L
from torch import nn

from alignsearch import atomic


class KeepSnapshots(L.Callback):
    """Save the task model's weights after chosen training steps: ``folder/step<N>.pt``."""

    def __init__(self, steps: list[int], folder: Path) -> None:
        self.steps, self.folder = set(steps), folder

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.global_step in self.steps:
            model = cast(nn.Module, pl_module.model)  # a TaskModule's model
            atomic.save_torch(self.folder / f"step{trainer.global_step}.pt", model.state_dict())
