"""Build tasks and models from their ``_target_`` configs, and name them for the zoo.

A config node names a class and its settings::

    {"_target_": "alignsearch.models.GRU", "d_model": 64}

Errors in the settings come back as one-line :class:`ConfigError`s keyed under the config group
(``model.d_model=127 ...``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import alignsearch
from alignsearch.errors import ConfigError

CONF_DIR = Path(alignsearch.__file__).resolve().parent / "conf"
"""The Hydra config folder, shipped inside the package: ``conf/<group>/<choice>.yaml`` (the repository's
top-level ``conf`` is a link to it)."""


def group_choices(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The choices of a config group (``model`` -> ``["gru", "lstm", ...]``)."""
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def load_choice(group: str, choice: str, key: str, search_dirs: Sequence[Path] = ()) -> DictConfig:
    """The config of ``group`` choice ``choice`` (e.g. a partner's ``model``) as Hydra composes it (its
    ``defaults`` applied), found in the package's configs or ``search_dirs`` (the folders of
    ``hydra.searchpath``); a ConfigError under ``key`` for a choice that does not exist.

    >>> load_choice("task", "sameobject_mod", "partner.task").modulus
    4
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    choices = sorted({c for d in (CONF_DIR, *search_dirs) for c in group_choices(group, Path(d))})
    if choice not in choices:
        raise ConfigError(key, choice, f"one of {', '.join(choices)}")
    overrides = [f"+{group}={choice}"]
    if search_dirs:
        overrides.append(f"hydra.searchpath=[{','.join(f'file://{Path(d).resolve()}' for d in search_dirs)}]")
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app: its config repository
        return compose(overrides=overrides)[group]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(overrides=overrides)[group]


def instantiate_checked(node: Mapping | DictConfig, group: str | None, **extra: Any) -> Any:
    """``hydra.utils.instantiate``, with a ConfigError raised inside keyed under ``group`` (if given)."""
    if not isinstance(node, DictConfig):
        node = OmegaConf.create(dict(node))
    try:
        return instantiate(node, _convert_="all", **extra)
    except ConfigError as e:
        raise (e.under(group) if group else e) from None
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, ConfigError):
            raise (cause.under(group) if group else cause) from None
        if isinstance(cause, TypeError) and "unexpected keyword" in str(cause):
            raise ConfigError(group, node.get("_target_"), f"known settings only ({cause})") from None
        raise


def build_task(node: Mapping | DictConfig):
    """A task from its config node (``cfg.task``)."""
    return instantiate_checked(node, "task")


def build_model(node: Mapping | DictConfig, vocab_size: int):
    """A model from its config node (``cfg.model``), sized for the task's vocabulary."""
    return instantiate_checked(node, "model", vocab_size=vocab_size)


def non_default_settings(component: Any) -> dict[str, Any]:
    """Settings that differ from the class's defaults (and are not already part of its name)."""
    params = inspect.signature(type(component).__init__).parameters
    out = {}
    for key, value in component.settings().items():
        if key in getattr(component, "naming_keys", ()):
            continue
        default = params[key].default if key in params else inspect.Parameter.empty
        if isinstance(default, tuple):
            default = list(default)
        if value != default:
            out[key] = value
    return out


def settings_suffix(*components: Any) -> str:
    """A short readable suffix for non-default settings: ``-d_model64-hold_outs3_5`` (empty for defaults)."""
    parts = []
    for component in components:
        for key, value in non_default_settings(component).items():
            parts.append(f"-{key}{format_setting(value)}")
    return "".join(parts)


def format_setting(value: Any) -> str:
    """A setting's value as part of a folder name: ``[3, 5]`` -> ``3_5``, ``0.002`` -> ``0.002``."""
    if isinstance(value, (list, tuple)):
        return "_".join(format_setting(v) for v in value) if value else "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).strip("/").replace("/", "_")  # a folder name, even for a path
