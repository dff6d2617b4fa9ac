"""SIGTERM and SIGINT end a run with a checkpoint and a non-zero exit; submitit's preemption signal requeues.

Slurm sends SIGTERM on preemption and at the time limit, ``kill`` sends it too, and Ctrl+C sends SIGINT.
Left to Lightning, SIGTERM ends training with exit status 0 and no checkpoint, so a sweep would record a
success that never happened. Here:

* during training, :class:`SaveOnSignal` (a callback of every trainer) notes the signal and, at the end
  of the training step under way (where ``ModelCheckpoint`` saves, so a resumed run continues exactly),
  saves the run's ``last.ckpt`` and raises :class:`Interrupted`; a second SIGINT does not wait;
* elsewhere (building data, evaluating, writing results) :func:`signals_interrupt`, around the entry
  points, raises :class:`Interrupted` at once: the run resumes from its last checkpoint, and atomic writes
  leave no half-written file;
* the command line prints the message as one line and exits with ``128 + signal`` (143 for SIGTERM,
  130 for SIGINT); the same command resumes.

Inside a submitit job (``hardware=slurm``), submitit's preemption signal (USR2, sent by Slurm before the
time limit and on preemption) saves the checkpoint the same way and then hands over to submitit, which
requeues the job (``hydra.launcher.max_num_timeout`` bounds how often a time limit may do so) and exits;
the requeued job resumes by itself. SIGTERM is not a requeue there: ``scancel`` sends it too, and Slurm
requeues a preempted job itself where the cluster is set up to.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L

SIGNALS = (signal.SIGTERM, signal.SIGINT)
"""The signals that end a run (with a checkpoint when training)."""

INTERRUPTED: list[Interrupted] = []
"""Jobs of this process's sweep that a signal ended (recorded as failed); the sweep stops after one."""

_requeuing = False
"""Submitit is requeueing this job: Slurm's SIGTERM that ends the requeued step is expected, not an end."""


class Interrupted(BaseException):
    """A run ended by a signal. Like KeyboardInterrupt, not an ``Exception``: nothing treats it as an error
    of the run (``except Exception`` blocks let it through)."""

    def __init__(
        self,
        signum: int,
        step: int | None = None,
        checkpoint: Path | str | None = None,
        resume: str = "run the same command again to resume",
    ) -> None:
        self.signum, self.step, self.checkpoint, self.resume = int(signum), step, checkpoint, resume
        super().__init__(self.message)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        """``128 + signal``, what a shell reports for a process that a signal ended."""
        return 128 + self.signum

    @property
    def message(self) -> str:
        if self.checkpoint is None:
            return f"interrupted by {self.name}; {self.resume}"
        return f"interrupted by {self.name} at step {self.step}: checkpoint saved in {self.checkpoint}; {self.resume}"

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple:  # pickled across processes (joblib workers)
        return type(self), (self.signum, self.step, self.checkpoint, self.resume)


def preemption_signal() -> int | None:
    """Submitit's preemption signal inside a submitit job (USR2, or ``$SUBMITIT_PREEMPT_SIGNAL``), else None."""
    if not os.environ.get("SUBMITIT_FOLDER"):  # set by submitit where it runs a job
        return None
    try:
        from submitit.core.job_environment import JobEnvironment

        return int(JobEnvironment._usr_sig())
    except Exception:  # noqa: BLE001 - no usable submitit signal: nothing to requeue with
        return None


def requeue(handler: Callable, signum: int, frame: Any = None) -> None:
    """Hand the preemption signal to submitit's handler (it checkpoints the job's submission, requeues it
    and exits); Slurm's SIGTERM that follows a requeue is ignored from here on."""
    global _requeuing
    _requeuing = True
    try:
        handler(signum, frame)
    except SystemExit:  # requeued: the process ends
        raise
    except BaseException:  # not requeued (e.g. too many timeouts): SIGTERM ends the run again
        _requeuing = False
        raise


def _raise_now(signum: int, frame: Any) -> None:
    if signum == signal.SIGTERM and _requeuing:
        return
    raise Interrupted(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _install(handlers: dict[int, Any]) -> dict[int, Any]:
    """Install ``handlers``; return the ones they replace."""
    previous = {}
    for signum, handler in handlers.items():
        previous[signum] = signal.getsignal(signum)
        signal.signal(signum, handler)
    return previous


def _restore(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within: SIGTERM and SIGINT raise :class:`Interrupted` at once; inside a submitit job its preemption
    signal requeues the job. Training defers both to the end of its step (:class:`SaveOnSignal`)."""
    if not _in_main_thread():  # signal handlers live in the main thread only
        yield
        return
    handlers: dict[int, Any] = dict.fromkeys(SIGNALS, _raise_now)
    preempt = preemption_signal()
    if preempt is not None and callable(submitit_handler := signal.getsignal(preempt)):
        handlers[preempt] = lambda signum, frame: requeue(submitit_handler, signum, frame)
    previous = _install(handlers)
    try:
        yield
    finally:
        _restore(previous)


class SaveOnSignal(L.Callback):
    """On SIGTERM or SIGINT during training: save ``checkpoint`` at the end of the step under way, then raise
    :class:`Interrupted`; inside a submitit job, its preemption signal saves and then requeues the job.

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
        self._restore()
        self.pending = None
        if _in_main_thread():
            signums = list(SIGNALS)
            preempt = preemption_signal()
            if preempt is not None and callable(signal.getsignal(preempt)):
                signums.append(preempt)
            self._before = {signum: signal.getsignal(signum) for signum in signums}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _install(dict.fromkeys(self._before, self._note))

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "validate":  # evaluation alone: nothing to save, stop at once
            _install(dict.fromkeys(set(SIGNALS) & set(self._before), _raise_now))

    def _restore(self) -> None:
        _restore(self._before)
        self._before = {}

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore()

    # --- acting on a signal

    def _note(self, signum: int, frame: Any) -> None:
        """The handler during training: remember the signal; act at the end of the step."""
        if self.pending is None:
            self.pending = signum
        elif signum == signal.SIGINT:  # a second Ctrl+C: stop now, without a checkpoint
            raise Interrupted(signum)
        elif signum not in SIGNALS:  # the preemption signal wins: requeue
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
        if signum not in SIGNALS and callable(handler):  # submitit's preemption signal
            self._restore()
            if checkpoint is not None:
                name = signal.Signals(signum).name
                print(f"{name} at step {step}: checkpoint saved in {checkpoint}; requeueing", flush=True)
            requeue(handler, signum)
        raise Interrupted(signum, step, checkpoint)
