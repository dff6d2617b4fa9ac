"""Lightning callbacks of both trainers: stop at an accuracy, count the training time."""

from __future__ import annotations

import time
from typing import Any

import lightning as L


class StopAtAccuracy(L.Callback):
    """Stop once ``monitor`` has stayed at or above ``threshold`` for ``patience`` validations in a row."""

    def __init__(self, monitor: str = "val/trial_acc", threshold: float = 0.999, patience: int = 1) -> None:
        self.monitor, self.threshold, self.patience = monitor, threshold, patience
        self.hits = 0

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        self.hits = self.hits + 1 if value >= self.threshold else 0
        if self.hits >= self.patience:
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"hits": self.hits}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.hits = state_dict["hits"]


class TrainClock(L.Callback):
    """Wall-clock seconds spent in training, summed over interruptions and resumes."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started: float | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._lap()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Log the training time so far beside the evaluation (time-to-accuracy curves)."""
        if trainer.state.fn == "fit":
            self._lap()
            pl_module.log("train_seconds", self.seconds)

    def _lap(self) -> None:
        if self._started is not None:
            now = time.perf_counter()
            self.seconds += now - self._started
            self._started = now

    def state_dict(self) -> dict[str, Any]:
        self._lap()
        return {"seconds": self.seconds}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.seconds = state_dict["seconds"]
