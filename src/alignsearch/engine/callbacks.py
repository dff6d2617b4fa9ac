"""Lightning callbacks of both trainers: stop at an accuracy, count the training time, record what a
checkpoint belongs to, save and stop on a signal."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import lightning as L

from alignsearch.engine import interrupt


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
    """Wall-clock seconds spent in training, summed over interruptions and resumes; of them,
    ``step_seconds`` in the training steps themselves (each batch's forward, backward and update) and
    ``validation_seconds`` in the evaluations between them."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.step_seconds = 0.0
        self.validation_seconds = 0.0
        self._started: float | None = None
        self._step: float | None = None
        self._validation: float | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx
    ) -> None:
        self._step = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx
    ) -> None:
        if self._step is not None:
            self.step_seconds += time.perf_counter() - self._step
            self._step = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._validation = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._validation is not None and trainer.state.fn == "fit":
            self.validation_seconds += time.perf_counter() - self._validation
        self._validation = None

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
        return {
            "seconds": self.seconds,
            "step_seconds": self.step_seconds,
            "validation_seconds": self.validation_seconds,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.seconds = state_dict["seconds"]
        self.step_seconds = state_dict.get("step_seconds", 0.0)  # checkpoints written before it have none
        self.validation_seconds = state_dict.get("validation_seconds", 0.0)


class RecordInCheckpoints(L.Callback):
    """Write ``record`` under ``key`` into every checkpoint the trainer saves: what the checkpoint belongs to,
    read back before a run resumes from it."""

    def __init__(self, key: str, record: Any) -> None:
        self.key, self.record = key, record

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[self.key] = self.record


class SaveOnSignal(L.Callback):
    """On SIGTERM or SIGINT during training: save ``checkpoint`` at the end of the step under way, then raise
    :class:`~alignsearch.engine.interrupt.Interrupted`; inside a submitit job, its preemption signal saves
    and then requeues the job (see :mod:`alignsearch.engine.interrupt`).

    Installed when training starts (after Lightning's own SIGTERM handler, which would end the run with
    exit status 0 and no checkpoint); a stand-alone ``trainer.validate`` raises at once instead. The
    handlers that were there before are restored when the trainer is done.
    """

    def __init__(self, checkpoint: Path | str) -> None:
        self.checkpoint = Path(checkpoint)
        self.pending: int | None = None
        self._before: dict[int, Any] = {}

    # --- installing and restoring the handlers

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Note the handlers in place before Lightning adds its own (what both put back at the end)."""
        self._put_back()
        self.pending = None
        if interrupt.in_main_thread():
            signums: list[int] = list(interrupt.SIGNALS)
            preempt = interrupt.preemption_signal()
            if preempt is not None and callable(signal.getsignal(preempt)):
                signums.append(preempt)
            self._before = {signum: signal.getsignal(signum) for signum in signums}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        interrupt.install(dict.fromkeys(self._before, self._note))

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "validate":  # evaluation alone: nothing to save, stop at once
            interrupt.install(dict.fromkeys(set(interrupt.SIGNALS) & set(self._before), interrupt.raise_now))

    def _put_back(self) -> None:
        interrupt.restore(self._before)
        self._before = {}

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._put_back()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._put_back()

    # --- acting on a signal

    def _note(self, signum: int, frame: Any) -> None:
        """The handler during training: remember the signal; act at the end of the step."""
        if self.pending is None:
            self.pending = signum
        elif signum == signal.SIGINT:  # a second Ctrl+C: stop now, without a checkpoint
            raise interrupt.Interrupted(signum)
        elif signum not in interrupt.SIGNALS:  # the preemption signal wins: requeue
            self.pending = signum

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self.pending is None:
            return
        self._save(trainer)
        self._act(trainer.global_step, self.checkpoint)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.pending is not None:  # the signal came after the last step: its checkpoints stand
            self._act(None, None)

    def _save(self, trainer: L.Trainer) -> None:
        """``trainer.save_checkpoint`` into a temporary file renamed over ``checkpoint``: a kill while saving
        leaves the previous checkpoint whole."""
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint.with_name(f".{self.checkpoint.name}.{os.getpid()}.tmp")
        try:
            trainer.save_checkpoint(tmp, weights_only=False)
            os.replace(tmp, self.checkpoint)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _act(self, step: int | None, checkpoint: Path | None) -> None:
        signum, self.pending = self.pending, None
        assert signum is not None
        handler = self._before.get(signum)
        if signum not in interrupt.SIGNALS and callable(handler):  # submitit's preemption signal
            self._put_back()
            if checkpoint is not None:
                name = signal.Signals(signum).name
                print(f"{name} at step {step}: checkpoint saved in {checkpoint}; requeueing", flush=True)
            interrupt.requeue(handler, signum)
        raise interrupt.Interrupted(signum, step, checkpoint)
