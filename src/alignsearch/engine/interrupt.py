"""SIGTERM and SIGINT end a run with a checkpoint and a non-zero exit; submitit's preemption signal requeues.

Slurm sends SIGTERM on preemption and at the time limit, ``kill`` sends it too, and Ctrl+C sends SIGINT.
Left to Lightning, SIGTERM ends training with exit status 0 and no checkpoint, so a sweep would record a
success that never happened. Here:

* during training, :class:`~alignsearch.engine.callbacks.SaveOnSignal` (a callback of every trainer) notes the signal and, at the end
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

SIGNALS = (signal.SIGTERM, signal.SIGINT)
"""The signals that end a run (with a checkpoint when training)."""

INTERRUPTED: list[Interrupted] = []
"""Jobs of this process's sweep that a signal ended (recorded as failed); the sweep stops after one."""

_requeuing = False
"""Submitit is requeueing this job: Slurm's SIGTERM that ends the requeued step is expected, not an end."""


RESUME = "run the same command again to resume"
"""What an interrupted command's line says to do, unless it knows better (a sweep: its folder)."""


class Interrupted(BaseException):
    """A run ended by a signal. Like KeyboardInterrupt, not an ``Exception``: nothing treats it as an error
    of the run (``except Exception`` blocks let it through)."""

    def __init__(
        self,
        signum: int,
        step: int | None = None,
        checkpoint: Path | str | None = None,
        resume: str = RESUME,
        requeued: bool | None = None,
    ) -> None:
        self.signum, self.step, self.checkpoint, self.resume = int(signum), step, checkpoint, resume
        self.requeued = (
            slurm_requeued() if requeued is None and self.signum == signal.SIGTERM else bool(requeued)
        )
        """Slurm sent the signal because it requeues the job (``scontrol requeue``, a preemption that
        requeues): the job runs again by itself and resumes from the checkpoint."""
        if self.requeued:
            self.resume = "Slurm requeued the job: it resumes from there"
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
        return type(self), (self.signum, self.step, self.checkpoint, self.resume, self.requeued)


def slurm_requeued() -> bool:
    """Whether Slurm is requeueing the job this process runs in: its ``Restarts`` count (``scontrol show
    job``) is above the one the job started with (``$SLURM_RESTART_COUNT``, absent on a first run).

    ``scontrol requeue`` and a preemption that requeues send SIGTERM, as ``scancel`` does: only this tells
    a requeue, which the job survives, from an end. False outside a Slurm job or where Slurm cannot be
    asked."""
    import subprocess

    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return False
    try:
        shown = subprocess.run(
            ["scontrol", "-o", "show", "job", job], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    fields = dict(item.split("=", 1) for item in shown.split() if "=" in item)
    try:
        return int(fields.get("Restarts", 0)) > int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    except ValueError:
        return False


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


def raise_now(signum: int, frame: Any) -> None:
    if signum == signal.SIGTERM and _requeuing:
        return
    raise Interrupted(signum)


def in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install(handlers: dict[int, Any]) -> dict[int, Any]:
    """Install ``handlers``; return the ones they replace."""
    previous = {}
    for signum, handler in handlers.items():
        previous[signum] = signal.getsignal(signum)
        signal.signal(signum, handler)
    return previous


def restore(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within: SIGTERM and SIGINT raise :class:`Interrupted` at once; inside a submitit job its preemption
    signal requeues the job. Training defers both to the end of its step
    (:class:`~alignsearch.engine.callbacks.SaveOnSignal`)."""
    if not in_main_thread():  # signal handlers live in the main thread only
        yield
        return
    handlers: dict[int, Any] = dict.fromkeys(SIGNALS, raise_now)
    preempt = preemption_signal()
    if preempt is not None and callable(submitit_handler := signal.getsignal(preempt)):
        handlers[preempt] = lambda signum, frame: requeue(submitit_handler, signum, frame)
    previous = install(handlers)
    try:
        yield
    finally:
        restore(previous)
