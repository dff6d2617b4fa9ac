"""Fixtures shared by the tests (helpers and settings are in tests/helpers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import SMALL_GRU, TINY_TRAINING, command_env, compose_config


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One torch thread in this process and in the commands the tests start (they inherit
    ``OMP_NUM_THREADS``), unless ``OMP_NUM_THREADS`` is set: the models here are tiny, and on a busy
    machine a second thread mostly waits for the first."""
    import torch

    ours = "OMP_NUM_THREADS" not in os.environ
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    yield
    torch.set_num_threads(threads)
    if ours:
        del os.environ["OMP_NUM_THREADS"]


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    return tmp_path / "zoo"


@pytest.fixture
def enter_command_env(tmp_path: Path, monkeypatch):
    """``enter(zoo)`` puts this process in the environment ``run_script`` gives a command: ``zoo`` as
    ``$ALIGNSEARCH_ZOO`` and ``tmp_path`` as the working folder (for the in-process checks of
    ``helpers.refusal`` and ``helpers.body_refusal``); undone after the test."""

    def enter(zoo: Path) -> Path:
        for key in ("ALIGNSEARCH_ZOO", "WANDB_MODE", "HYDRA_FULL_ERROR"):
            monkeypatch.setenv(key, command_env(zoo)[key])
        monkeypatch.chdir(tmp_path)
        return zoo

    return enter


@pytest.fixture
def in_command_env(zoo: Path, enter_command_env) -> Path:
    """This process in the environment ``run_script`` gives a command with the test's own ``zoo``."""
    return enter_command_env(zoo)


@pytest.fixture(scope="session")
def trained_zoo(tmp_path_factory) -> Path:
    """A zoo holding a small GRU trained well enough on MultiObject (seed 0) for alignment tests."""
    from alignsearch import zoo
    from alignsearch.cli.checks import model_request

    root = tmp_path_factory.mktemp("trained_zoo")
    cfg = compose_config(
        "train_task_model",
        [
            f"paths.zoo_dir={root}",
            "paths.output_dir=unused",
            *SMALL_GRU,
        ],
    )
    entry = zoo.get_or_train(model_request(cfg), verbose=False)
    assert entry.metrics["val_trial_acc"] >= 0.9, entry.metrics
    return root


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory) -> Path:
    """A zoo holding the TINY_TRAINING GRU (``multiobject/gru/seed0-d_model32`` + ``TINY_SUFFIX``),
    trained once for the tests that read it; a test that changes it works on a copy."""
    from alignsearch import zoo
    from alignsearch.cli.checks import model_request

    root = tmp_path_factory.mktemp("tiny_zoo")
    cfg = compose_config(
        "train_task_model", [f"paths.zoo_dir={root}", "paths.output_dir=unused", *TINY_TRAINING]
    )
    zoo.get_or_train(model_request(cfg), verbose=False)
    return root


@pytest.fixture(scope="session")
def toy_lms(tmp_path_factory) -> dict[str, Path]:
    """Folders of small trained language models (``alignsearch.text.toy``), built once (a few seconds):
    ``gpt2`` and ``llama`` trained on the plain counting texts, ``gpt2_terse`` the GPT-2 fine-tuned on the
    terse ones, ``gpt2_untrained`` a random model of the GPT-2's shape."""
    pytest.importorskip("transformers")
    from alignsearch.text import toy

    root = tmp_path_factory.mktemp("toy_lms")
    folders = {arch: toy.build_toy_lm(root / arch, architecture=arch).folder for arch in ("gpt2", "llama")}
    folders["gpt2_terse"] = toy.finetune_toy_lm(root / "gpt2", root / "gpt2_terse", style="terse").folder
    folders["gpt2_untrained"] = toy.build_untrained_lm(root / "gpt2_untrained", like=root / "gpt2")
    return folders
