"""How training shows its progress (``hardware.progress_bar``): Lightning's rich bar when stdout is a
terminal, plain lines when it is not (a Slurm log, a file, a pipe), where the bar would print nothing
until the end.

A line, at most every ``hardware.progress_every`` seconds and once when training ends::

    step 150/1000 (15%), 12.4 s, 12.1 steps/s, loss 0.412, val/iia_mean 0.873, val/iia_min 0.81

gives the optimizer step, the time and speed of this training so far (a resumed run counts from where it
resumed), the latest training loss and the latest validation metrics (the mean IIA or the trial accuracy
first).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar

from alignsearch.settings import HardwareSettings

LOSS = "train/loss"
"""The key both LightningModules log their training loss under (``metrics.csv``, W&B); shown as ``loss``."""

FIRST_METRICS = ("val/iia_mean", "val/trial_acc", "val/iia_min", "val/token_acc")
"""Validation metrics a progress line shows first, when they are there."""

MAX_METRICS = 3
"""At most this many validation metrics on a progress line."""


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (by default ``sys.stdout`` as it is now) is an interactive terminal: where the
    rich bar shows; elsewhere training prints :class:`ProgressLines`."""
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def progress_callbacks(hardware: HardwareSettings) -> list[L.Callback]:
    """What shows a trainer's progress on ``hardware``: nothing without ``hardware.progress_bar``, else a
    :class:`StepProgressBar` on a terminal (:func:`is_terminal`) and :class:`ProgressLines` elsewhere."""
    if not hardware.progress_bar:
        return []
    if is_terminal():
        return [StepProgressBar(leave=False)]
    return [ProgressLines(hardware.progress_every)]


def bar_metrics(items: dict[str, Any]) -> dict[str, Any]:
    """The progress bar's metrics without Lightning's logger version (``v_num``, a W&B run id or 0), the
    training loss named ``loss``."""
    items = {key: value for key, value in items.items() if key != "v_num"}
    if LOSS in items:
        items = {"loss": items.pop(LOSS), **items}
    return items


class StepProgressBar(RichProgressBar):
    """Lightning's rich progress bar for step-based training: the bar says ``training``, not the epoch
    (training here is one endless epoch, which the default bar shows as ``Epoch 0/-2``), and shows the
    loss and validation metrics (:func:`bar_metrics`)."""

    def _get_train_description(self, current_epoch: int) -> str:
        return "training"

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        return bar_metrics(super().get_metrics(trainer, pl_module))


def _number(value: Any) -> float:
    return float(value.item() if hasattr(value, "item") else value)


def duration(seconds: float) -> str:
    """``12.4 s``, ``2m05s`` or ``1h02m05s``.

    >>> duration(12.44), duration(125), duration(3725)
    ('12.4 s', '2m05s', '1h02m05s')
    """
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def val_metrics(metrics: dict[str, Any], limit: int = MAX_METRICS) -> dict[str, float]:
    """Up to ``limit`` validation metrics of ``metrics`` (``trainer.callback_metrics``): those of
    :data:`FIRST_METRICS` first, then other summaries (``val/<name>``), then per-track ones.

    >>> val_metrics({"train/loss": 0.5, "val/iia/0>0/count": 0.7, "val/iia_min": 0.7, "val/iia_mean": 0.8})
    {'val/iia_mean': 0.8, 'val/iia_min': 0.7, 'val/iia/0>0/count': 0.7}
    """
    names = [name for name in metrics if name.startswith("val/")]
    first = [name for name in FIRST_METRICS if name in names]
    rest = sorted((name for name in names if name not in first), key=lambda name: (name.count("/"), name))
    return {name: _number(metrics[name]) for name in [*first, *rest][:limit]}


class ProgressLines(L.Callback):
    """Training's progress as plain lines on stdout (flushed): one at most every ``every`` seconds and one
    when training ends (see the module's docstring); ``clock`` gives the time in seconds (by default
    ``time.monotonic``)."""

    def __init__(self, every: float = 10.0, clock: Callable[[], float] | None = None) -> None:
        self.every = every
        self.clock = clock
        self._started = self._last = 0.0
        self._first_step = 0

    def _now(self) -> float:
        return self.clock() if self.clock is not None else time.monotonic()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = self._last = self._now()
        self._first_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        now = self._now()
        if now - self._last >= self.every:
            self._last = now
            self._print(trainer, now)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._print(trainer, self._now())

    def _print(self, trainer: L.Trainer, now: float) -> None:
        if trainer.is_global_zero:
            print(self.line(trainer, now), flush=True)

    def line(self, trainer: L.Trainer, now: float) -> str:
        """The progress line of ``trainer`` at time ``now``."""
        step, total = trainer.global_step, trainer.max_steps
        parts = [f"step {step}/{total} ({100 * step // total}%)" if total > 0 else f"step {step}"]
        elapsed = now - self._started
        parts.append(duration(elapsed))
        if elapsed > 0:
            parts.append(f"{(step - self._first_step) / elapsed:.3g} steps/s")
        metrics = trainer.callback_metrics
        if LOSS in metrics:
            parts.append(f"loss {_number(metrics[LOSS]):.4g}")
        parts += [f"{name} {value:.4g}" for name, value in val_metrics(metrics).items()]
        return ", ".join(parts)
