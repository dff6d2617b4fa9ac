"""train_task_model.py through the command line (run in this process), the zoo API, resuming and
progress lines (two real processes that need the same model: ``commands/test_process_safety.py``)."""

from __future__ import annotations

import json
import re
import shutil

import lightning as L
import pytest
import torch

from alignsearch import zoo
from alignsearch.cli import train_task_model
from alignsearch.cli.checks import model_request
from alignsearch.errors import ConfigError, ZooError
from tests.helpers import TINY_SUFFIX, TINY_TRAINING, compose_config, run_here, task_accuracies

ENTRY = f"multiobject/gru/seed0-d_model32{TINY_SUFFIX}"


def test_cli_trains_a_zoo_entry(zoo, tmp_path, enter_command_env, capsys) -> None:
    """The command in this process (``run_here``; two real processes: ``commands/test_process_safety.py``)."""
    result = run_here(
        "train_task_model.py",
        "model=gru",
        "task=multiobject",
        "seed=0",
        *TINY_TRAINING,
        zoo=zoo,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    entry = zoo / ENTRY
    assert sorted(p.name for p in entry.iterdir()) == [
        "checkpoints",
        "config.yaml",
        "entry.json",
        "metrics.json",
        "model.pt",
    ]
    metrics = json.loads((entry / "metrics.json").read_text())
    trained = zoo_load(entry)
    for split, n in (("val", 64), ("heldout", 32)):  # TINY_TRAINING's n_val and n_heldout
        trial, token = task_accuracies(trained.model, trained.task, n, split)  # computed here, by hand
        assert metrics[f"{split}_trial_acc"] == pytest.approx(trial, abs=1e-6), split
        assert metrics[f"{split}_token_acc"] == pytest.approx(token, abs=1e-6), split
    assert metrics["steps"] == 40 and metrics["train_seconds"] > 0
    state = torch.load(entry / "model.pt", weights_only=True)
    assert state["embedding.weight"].shape == (8, 32)
    info = json.loads((entry / "entry.json").read_text())
    assert info["vocab"] == ["P", "B", "E", "D0", "D1", "D2", "R", "T"] and info["sites"] == {
        "embedding": 32,
        "layer.0": 32,
    }
    assert "d_model: 32" in (entry / "config.yaml").read_text()
    assert not (zoo / f"{ENTRY}.partial").exists()
    assert list(tmp_path.glob("outputs/train_task_model/*/*/logs/version_0/metrics.csv"))

    enter_command_env(zoo)  # the same command again, its body in-process: the entry is found
    train_task_model.main(
        compose_config("train_task_model", ["seed=0", *TINY_TRAINING, "paths.output_dir=again"])
    )
    assert f"already in the zoo: {entry}" in capsys.readouterr().out
    loaded = zoo_load(entry)
    assert loaded.metrics == metrics and not loaded.model.training


def zoo_load(path):
    return zoo.load(path)


def tiny_cfg(zoo_dir, *extra: str):
    return compose_config(
        "train_task_model", [f"paths.zoo_dir={zoo_dir}", "paths.output_dir=unused", *TINY_TRAINING, *extra]
    )


class Crash(L.Callback):
    """Simulate a crash (power cut, preemption) after a given step."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("simulated crash")


def test_interrupted_training_resumes_to_the_same_model(tiny_zoo, tmp_path) -> None:
    straight = zoo.load(tiny_zoo / ENTRY)  # the same settings, trained without a crash

    cfg = tiny_cfg(tmp_path / "b")
    with pytest.raises(RuntimeError, match="simulated crash"):
        zoo.get_or_train(model_request(cfg), callbacks=[Crash(30)], verbose=False)
    partial = tmp_path / "b" / f"{ENTRY}.partial"
    assert (partial / "checkpoints" / "last.ckpt").is_file()
    assert torch.load(partial / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 20
    assert not (tmp_path / "b" / ENTRY).exists()

    resumed = zoo.get_or_train(model_request(cfg), verbose=False)
    assert resumed.metrics["steps"] == 40
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)
    assert resumed.metrics["val_trial_acc"] == straight.metrics["val_trial_acc"]


def test_a_given_checkpoint_must_be_of_this_entrys_training(tiny_zoo, tmp_path) -> None:
    """``ckpt_path`` resumes only a checkpoint written while training this very entry: one of another
    training would publish its weights under this entry's name."""
    straight = zoo.load(tiny_zoo / ENTRY)
    with pytest.raises(RuntimeError, match="simulated crash"):
        zoo.get_or_train(model_request(tiny_cfg(tmp_path / "a")), callbacks=[Crash(30)], verbose=False)
    given = tmp_path / "given.ckpt"
    shutil.copy(tmp_path / "a" / f"{ENTRY}.partial" / "checkpoints" / "last.ckpt", given)

    other_seed = model_request(tiny_cfg(tmp_path / "b", "seed=1", f"ckpt_path={given}"))
    with pytest.raises(
        ConfigError,
        match=rf"^ckpt_path={given} is not allowed: expected a checkpoint of the training of "
        r"seed1-d_model32.*\(it was written with seed=0, this entry has seed=1\)$",
    ):
        zoo.get_or_train(other_seed, verbose=False)
    assert not (tmp_path / "b" / "multiobject").exists() or not any((tmp_path / "b").rglob("*.ckpt"))

    state = torch.load(given, weights_only=False)
    unmarked = tmp_path / "unmarked.ckpt"
    torch.save({k: v for k, v in state.items() if k != zoo.CHECKPOINT_ENTRY}, unmarked)
    with pytest.raises(ConfigError, match=r"it records no zoo entry"):
        zoo.get_or_train(model_request(tiny_cfg(tmp_path / "c", f"ckpt_path={unmarked}")), verbose=False)

    resumed = zoo.get_or_train(model_request(tiny_cfg(tmp_path / "d", f"ckpt_path={given}")), verbose=False)
    for key, value in straight.model.state_dict().items():  # step 20 of the same training, then on to 40
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)


def test_a_rerun_resumes_from_the_checkpoint_furthest_along(tiny_zoo, tmp_path) -> None:
    """With ``ckpt_path`` given, an interrupted training's own checkpoint wins when it is further along
    (the same command run again continues where it stopped, not from the given file)."""
    with pytest.raises(RuntimeError, match="simulated crash"):
        zoo.get_or_train(model_request(tiny_cfg(tmp_path)), callbacks=[Crash(30)], verbose=False)
    work = tmp_path / f"{ENTRY}.partial"
    own = work / "checkpoints" / "last.ckpt"  # step 20
    state = torch.load(own, weights_only=False)
    for step in (10, 30):
        torch.save({**state, "global_step": step}, tmp_path / f"step{step}.ckpt")
    behind = model_request(tiny_cfg(tmp_path, f"ckpt_path={tmp_path / 'step10.ckpt'}"))
    ahead = model_request(tiny_cfg(tmp_path, f"ckpt_path={tmp_path / 'step30.ckpt'}"))
    assert zoo.resume_point(behind, work) == own
    assert zoo.resume_point(ahead, work) == tmp_path / "step30.ckpt"
    assert zoo.resume_point(model_request(tiny_cfg(tmp_path)), work) == own
    assert zoo.resume_point(model_request(tiny_cfg(tmp_path)), tmp_path / "elsewhere") is None


def test_entry_for_another_vocabulary_is_refused(tiny_zoo, tmp_path) -> None:
    wrong = tmp_path / "sameobject" / "gru" / f"seed0-d_model32{TINY_SUFFIX}"
    shutil.copytree(tiny_zoo / ENTRY, wrong)
    with pytest.raises(
        ZooError, match="has vocabulary P B E D0 D1 D2 R T but task sameobject needs P B E D T"
    ):
        zoo.get_or_train(model_request(tiny_cfg(tmp_path, "task=sameobject")), verbose=False)


def test_task_model_training_prints_progress_lines_when_stdout_is_not_a_terminal(tmp_path, capsys) -> None:
    from alignsearch import zoo
    from alignsearch.cli.checks import model_request

    cfg = compose_config(
        "train_task_model",
        [
            f"paths.zoo_dir={tmp_path / 'zoo'}",
            "paths.output_dir=unused",
            *TINY_TRAINING,
            "hardware.progress_bar=true",
        ],
    )
    zoo.get_or_train(model_request(cfg), verbose=False)
    printed = capsys.readouterr().out
    assert re.search(r"^step 40/40 \(100%\), .* steps/s, loss [\d.e-]+, val/trial_acc ", printed, re.M), (
        printed
    )
