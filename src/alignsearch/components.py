"""Build tasks and models from their ``_target_`` configs, and name them for the zoo.

A config node names a class and its settings::

    {"_target_": "alignsearch.models.GRU", "d_model": 64}

Errors in the settings come back as one-line :class:`ConfigError`s keyed under the config group
(``model.d_model=127 ...``).
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Iterator, Mapping, Sequence
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


NOT_A_KEY = re.compile(r"Could not override '([^']+)'")
MISSING_CHOICE = re.compile(r"Could not find '([^'/]+)/([^']+)'")


def compose_checked(config_name: str, overrides: Sequence[str], *, hydra: bool = False) -> DictConfig:
    """Hydra's composition of a command's config (``hydra``: with its ``hydra`` node); a choice of a
    config group that does not exist, or an override of a key that does not exist, is a one-line
    ConfigError (listing the choices, or naming the closest key)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException

    overrides = list(overrides)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name=config_name):
        try:
            return compose(config_name, overrides=overrides, return_hydra_config=hydra)
        except ConfigCompositionException as e:
            missing = MISSING_CHOICE.search(str(e))
            if missing:
                group, choice = missing.groups()
                raise ConfigError(group, choice, f"one of {', '.join(group_choices(group))}") from None
            match = NOT_A_KEY.search(str(e))
            if not match:
                raise
            key = match.group(1)
            given = next((o for o in overrides if o.split("=", 1)[0] == key), None)
            if given is None:  # not an override of ours: a config file's own defaults
                raise
            rest = [o for o in overrides if o != given]
            known = sorted(flat_keys(compose(config_name, overrides=rest)))
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = (
                f"did you mean {close[0]}?"
                if close
                else "add it with +key=value only where a config reads it"
            )
            raise ConfigError(key, given.split("=", 1)[1], f"a known setting ({hint})") from None


def flat_keys(node: Any, prefix: str = "") -> Iterator[str]:
    """Every dotted key of a config (``training.max_steps``, ...)."""
    if not isinstance(node, DictConfig):
        return
    for key in node:
        dotted = f"{prefix}{key}"
        yield dotted
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            yield from flat_keys(child, f"{dotted}.")
