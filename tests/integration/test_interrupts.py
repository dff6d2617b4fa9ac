"""Interrupts in one process (:mod:`alignsearch.engine.interrupt`): a signal outside training raises at
once, a second Ctrl+C does not wait for the end of the step, and SIGTERM in training saves that step's
checkpoint, from which the rerun continues to the same model (the commands stopped by a signal, for real:
``commands/test_signals.py``)."""

from __future__ import annotations

import os
import pickle
import signal
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from alignsearch import zoo as zoo_api
from alignsearch.cli.checks import model_request
from alignsearch.engine import interrupt
from alignsearch.engine.callbacks import SaveOnSignal
from alignsearch.engine.interrupt import Interrupted
from tests.commands.test_signals import EXIT, THREADS, checkpoint_step
from tests.helpers import TINY_TRAINING, compose_config


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_outside_training_raises_at_once(signum) -> None:
    before = signal.getsignal(signum)
    with pytest.raises(Interrupted) as caught, interrupt.signals_interrupt():
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler raises before this ends
    assert caught.value.signum == signum and caught.value.exit_status == EXIT[signum]
    name = signal.Signals(signum).name
    assert str(caught.value) == f"interrupted by {name}; run the same command again to resume"
    assert signal.getsignal(signum) is before  # restored
    copy = pickle.loads(pickle.dumps(Interrupted(signum, 7, "x/last.ckpt")))  # crosses joblib's processes
    assert (copy.signum, copy.step, str(copy)) == (signum, 7, str(Interrupted(signum, 7, "x/last.ckpt")))


def test_a_second_ctrl_c_does_not_wait_for_the_end_of_the_step(tmp_path) -> None:
    callback = SaveOnSignal(tmp_path / "last.ckpt")
    callback._note(signal.SIGINT, None)  # noted: acted on at the end of the step
    assert callback.pending == signal.SIGINT
    with pytest.raises(Interrupted) as caught:
        callback._note(signal.SIGINT, None)
    assert caught.value.checkpoint is None and caught.value.exit_status == 130


class SendSignal(L.Callback):
    """Send this process a signal in the middle of a training step (before the step's end hooks are done)."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def tiny_cfg(root: Path):
    return compose_config(
        "train_task_model", [f"paths.zoo_dir={root}", "paths.output_dir=unused", *TINY_TRAINING, *THREADS]
    )


@pytest.fixture
def one_thread():
    """hardware.threads=1 sets torch's threads for the whole process: put them back afterwards."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_sigterm_in_training_saves_that_step_and_the_rerun_continues_to_the_same_model(
    tmp_path, one_thread
) -> None:
    straight = zoo_api.get_or_train(model_request(tiny_cfg(tmp_path / "a")), verbose=False)
    cfg = tiny_cfg(tmp_path / "b")
    with interrupt.signals_interrupt(), pytest.raises(Interrupted) as caught:  # never the default action
        zoo_api.get_or_train(model_request(cfg), callbacks=[SendSignal(25, signal.SIGTERM)], verbose=False)
    stopped = caught.value
    assert (stopped.signum, stopped.step) == (signal.SIGTERM, 25)  # not the periodic checkpoint (20)
    assert stopped.checkpoint.name == "last.ckpt" and stopped.checkpoint.parent.parent.suffix == ".partial"
    assert checkpoint_step(stopped.checkpoint) == 25
    assert not [p for p in (tmp_path / "b").glob("*/*/*") if p.is_dir() and p.suffix != ".partial"]

    before = signal.getsignal(signal.SIGTERM)
    resumed = zoo_api.get_or_train(model_request(cfg), verbose=False)
    assert signal.getsignal(signal.SIGTERM) is before  # Lightning's handler and ours are gone again
    assert resumed.metrics["steps"] == 40
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)
    assert resumed.metrics["val_trial_acc"] == straight.metrics["val_trial_acc"]
