"""Training's progress: a rich bar on a terminal, plain lines elsewhere (engine/progress.py); a real
training's lines: ``integration/test_train_cli.py``."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

import torch
from lightning.pytorch.loggers import CSVLogger

from alignsearch.engine import progress
from alignsearch.engine.progress import ProgressLines, StepProgressBar, is_terminal
from alignsearch.engine.trainer import make_trainer
from alignsearch.settings import HardwareSettings


def hardware(**changes) -> HardwareSettings:
    settings = dict(accelerator="cpu", devices=1, precision="32-true", threads=None, progress_bar=True)
    return HardwareSettings(**settings | changes)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fake_trainer(**metrics) -> SimpleNamespace:
    return SimpleNamespace(global_step=0, max_steps=1000, is_global_zero=True, callback_metrics=metrics)


def test_progress_lines_print_at_most_every_n_seconds_and_at_the_end(capsys) -> None:
    clock = FakeClock()
    lines = ProgressLines(every=10, clock=clock)
    trainer = fake_trainer()
    lines.on_train_start(trainer, None)
    for step in range(1, 301):  # a step every 0.125 s: a line every 80 steps
        clock.now += 0.125
        trainer.global_step = step
        trainer.callback_metrics = {
            "train/loss": torch.tensor(1 / step),
            "val/iia/0>0/count": torch.tensor(0.5),
            "val/iia_min": torch.tensor(0.5),
            "val/iia_mean": torch.tensor(0.625),
            "val/token_iia/0>0/count": torch.tensor(0.75),
            "train_seconds": torch.tensor(3.0),
        }
        lines.on_train_batch_end(trainer, None)
    clock.now += 2.5
    trainer.global_step = 310
    lines.on_train_end(trainer, None)
    printed = capsys.readouterr().out.splitlines()
    assert [int(re.match(r"step (\d+)/1000", line).group(1)) for line in printed] == [80, 160, 240, 310]
    assert printed[0] == (
        "step 80/1000 (8%), 10.0 s, 8 steps/s, loss 0.0125, val/iia_mean 0.625, val/iia_min 0.5, "
        "val/iia/0>0/count 0.5"
    )
    assert printed[-1].startswith("step 310/1000 (31%), 40.0 s, 7.75 steps/s, loss 0.003333, ")


def test_progress_lines_of_a_resumed_run_count_its_own_steps_and_time(capsys) -> None:
    clock = FakeClock()
    lines = ProgressLines(every=60, clock=clock)
    trainer = fake_trainer(**{"val/trial_acc": 0.9, "val/token_acc": 0.99})
    trainer.global_step = 500
    lines.on_train_start(trainer, None)
    clock.now += 125
    trainer.global_step = 1000
    lines.on_train_batch_end(trainer, None)
    assert capsys.readouterr().out == (
        "step 1000/1000 (100%), 2m05s, 4 steps/s, val/trial_acc 0.9, val/token_acc 0.99\n"
    )


def test_is_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    closed = io.StringIO()
    closed.close()
    assert is_terminal(Terminal()) and not is_terminal(io.StringIO()) and not is_terminal(closed)
    assert not is_terminal(object())


def test_make_trainer_shows_a_bar_on_a_terminal_and_lines_elsewhere(monkeypatch, tmp_path) -> None:
    def trainer(settings: HardwareSettings):
        t = make_trainer(settings, max_steps=10, val_every=5, callbacks=[], loggers=False, root=tmp_path)
        return t, [c for c in t.callbacks if isinstance(c, StepProgressBar | ProgressLines)]

    monkeypatch.setattr(progress, "is_terminal", lambda stream=None: True)
    t, shown = trainer(hardware())
    assert [type(c) for c in shown] == [StepProgressBar] and t.progress_bar_callback is shown[0]

    monkeypatch.setattr(progress, "is_terminal", lambda stream=None: False)
    t, shown = trainer(hardware(progress_every=2.5))
    assert [type(c) for c in shown] == [ProgressLines] and shown[0].every == 2.5
    assert t.progress_bar_callback is None

    t, shown = trainer(hardware(progress_bar=False))
    assert shown == [] and t.progress_bar_callback is None


def test_progress_every_is_a_positive_number_with_a_default() -> None:
    assert hardware().progress_every == 10
    settings = HardwareSettings.parse(
        dict(
            accelerator="cpu",
            devices=1,
            precision="32-true",
            threads=None,
            progress_bar=True,
            progress_every=3,
        )
    )
    assert settings.progress_every == 3.0


def test_step_progress_bar_shows_loss_and_no_logger_version(tmp_path) -> None:
    trainer = SimpleNamespace(
        loggers=[CSVLogger(tmp_path, version=0)],
        progress_bar_metrics={"train/loss": torch.tensor(0.25), "val/iia_mean": 0.5},
    )
    assert StepProgressBar().get_metrics(trainer, None) == {"loss": 0.25, "val/iia_mean": 0.5}
