"""Configs build the right objects; zoo names show non-default settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from alignsearch.components import build_model, build_task, settings_suffix
from alignsearch.errors import ConfigError
from tests.helpers import CONF


@pytest.mark.parametrize("path", sorted((CONF / "task").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_task_config_builds_with_its_own_name(path: Path) -> None:
    task = build_task(OmegaConf.load(path))
    assert task.name == path.stem
    assert settings_suffix(task) == ""  # the config's values are the class defaults


@pytest.mark.parametrize("path", sorted((CONF / "model").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_model_config_builds_with_its_own_name(path: Path) -> None:
    model = build_model(OmegaConf.load(path), vocab_size=8)
    assert model.name == {"hf": "hf_gpt2"}.get(path.stem, path.stem)  # HF models name their architecture
    assert settings_suffix(model) == ""


def test_non_default_settings_name_the_entry() -> None:
    task = build_task({"_target_": "alignsearch.tasks.NumericTask", "hold_outs": [3, 5], "unk_p": 0.2})
    model = build_model({"_target_": "alignsearch.models.GRU", "d_model": 64}, vocab_size=task.vocab.size)
    assert settings_suffix(task, model) == "-hold_outs3_5-unk_p0.2-d_model64"
    empty = build_task({"_target_": "alignsearch.tasks.NumericTask", "hold_outs": []})
    assert settings_suffix(empty) == "-hold_outsnone"


def test_errors_are_keyed_under_their_group() -> None:
    with pytest.raises(ConfigError, match=r"^model\.d_model=127 is not allowed: expected an even width"):
        build_model({"_target_": "alignsearch.models.LSTM", "d_model": 127}, vocab_size=8)
    with pytest.raises(ConfigError, match=r"^task\.min_count=30 is not allowed"):
        build_task({"_target_": "alignsearch.tasks.NumericTask", "min_count": 30})
