"""Shared helpers: the repository root, running the entry points, composing configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# Small settings that train in seconds; the results are not meant to be good.
TINY_TRAINING = [
    "model.d_model=32",
    "training.max_steps=40",
    "training.val_every=20",
    "training.checkpoint_every=20",
    "training.n_val=64",
    "training.n_heldout=32",
    "training.batch_size=32",
    "hardware.progress_bar=false",
]
TINY_SUFFIX = "-batch_size32-max_steps40-val_every20-n_val64"
"""The zoo-name suffix of TINY_TRAINING's training settings (``seed0-d_model32`` + this)."""


def run_script(
    script: str, *args: str, zoo: Path, cwd: Path, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run an entry point of the repository as a user would, with its own zoo."""
    env = {**os.environ, "ALIGNSEARCH_ZOO": str(zoo), "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def compose_config(name: str, overrides: list[str]):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(name, overrides=overrides)


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    return tmp_path / "zoo"


TINY_ALIGNMENT = [
    "alignment.n_train=256",
    "alignment.n_val=128",
    "alignment.n_heldout=128",
    "alignment.n_test=128",
    "alignment.max_steps=20",
    "alignment.val_every=10",
    "alignment.batch_size=32",
    "alignment.eval_batch_size=128",
]

SMALL_GRU = [
    "model.d_model=32",
    "training.max_steps=1500",
    "training.stop_at=0.98",
    "training.n_val=256",
    "training.n_heldout=128",
    "hardware.progress_bar=false",
]
"""The GRU of ``trained_zoo``: its model and training settings (they name its zoo entry)."""
SMALL_GRU_ENTRY = "seed0-d_model32-max_steps1500-n_val256-stop_at0.98"


@pytest.fixture(scope="session")
def trained_zoo(tmp_path_factory) -> Path:
    """A zoo holding a small GRU trained well enough on MultiObject (seed 0) for alignment tests."""
    from alignsearch import zoo

    root = tmp_path_factory.mktemp("trained_zoo")
    cfg = compose_config(
        "train_task_model",
        [
            f"paths.zoo_dir={root}",
            "paths.output_dir=unused",
            *SMALL_GRU,
        ],
    )
    entry = zoo.get_or_train(zoo.request(cfg), verbose=False)
    assert entry.metrics["val_trial_acc"] >= 0.9, entry.metrics
    return root
