"""Configs build the right objects; zoo names show non-default settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from alignsearch.components import build_model, build_task, settings_suffix
from alignsearch.configurable import Configurable, constructor_arguments, missing_settings
from alignsearch.errors import ConfigError
from alignsearch.models import GRU
from tests.helpers import CONF, conf_node, task_model_configs


@pytest.mark.parametrize("path", sorted((CONF / "task").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_task_config_builds_with_its_own_name(path: Path) -> None:
    task = build_task(conf_node(path))
    assert task.name == path.stem
    assert settings_suffix(task) == ""  # the config's values are the class defaults


@pytest.mark.parametrize("path", task_model_configs(), ids=lambda p: p.stem)
def test_every_model_config_builds_with_its_own_name(path: Path) -> None:
    model = build_model(conf_node(path), vocab_size=8)
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


# -- settings are the constructor's arguments -----------------------------------------------------------------
COMPONENTS = [
    *(pytest.param("task", p, id=f"task-{p.stem}") for p in sorted((CONF / "task").glob("*.yaml"))),
    *(pytest.param("model", p, id=f"model-{p.stem}") for p in task_model_configs()),
]


def build(group: str, node):
    return build_task(node) if group == "task" else build_model(node, vocab_size=8)


@pytest.mark.parametrize(("group", "path"), COMPONENTS)
def test_settings_are_every_constructor_argument(group: str, path: Path) -> None:
    """Each constructor argument names the zoo entry (vocab_size comes from the task), and the settings
    build the same thing again."""
    node = conf_node(path)
    if group == "model" and "hf" in node["_target_"]:
        pytest.importorskip("transformers")
    component = build(group, node)
    assert missing_settings(component) == []
    expected = set(constructor_arguments(type(component))) - set(component.settings_exclude)
    assert set(component.settings()) == expected
    again = build(group, {"_target_": node["_target_"], **component.settings()})
    assert again.settings() == component.settings()


def test_a_setting_left_out_is_caught() -> None:
    """The GRU's head_mult: left out of settings(), GRUs of head_mult 4 and 8 would share a zoo entry."""

    class ForgetfulGRU(GRU):
        def settings(self) -> dict:
            return {k: v for k, v in super().settings().items() if k != "head_mult"}

    assert missing_settings(ForgetfulGRU(8)) == ["head_mult"]
    assert settings_suffix(GRU(8, head_mult=8)) == "-head_mult8" and settings_suffix(GRU(8)) == ""
    assert settings_suffix(ForgetfulGRU(8, head_mult=8)) == ""  # what the check guards against


def test_settings_are_recorded_from_the_outermost_constructor() -> None:
    class Base(Configurable):
        settings_exclude = ("size",)
        settings_canonical = {"seen": sorted}

        def __init__(self, size: int, seen: list[int] = (3, 1), **extra) -> None:
            self.size = size

    class Child(Base):
        def __init__(self, size: int, depth: int = 2) -> None:
            super().__init__(size, seen=[5, 4], scale=1.5)

    seen = [2, 1]
    base = Base(4, seen, scale=3)
    seen.append(0)  # a caller's later change is not the object's setting
    assert base.settings() == {"seen": [1, 2], "scale": 3}
    assert Child(4).settings() == {"depth": 2}  # the child's own arguments, defaults applied
    assert constructor_arguments(Child) == ["size", "depth"]
