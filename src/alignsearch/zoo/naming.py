"""What names a zoo entry, and where it lives: its folder name from its settings, the identity a request
and a checkpoint record, and the folders beside it (``.partial`` while it trains, ``.lock``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alignsearch.components import format_setting, non_default_settings, settings_suffix
from alignsearch.models import SequenceModel
from alignsearch.naming import with_digest
from alignsearch.settings import TRAINING_DEFAULTS, TrainingSettings, plain

ENV_ZOO = "ALIGNSEARCH_ZOO"
MAX_NAME = 120
"""Longer entry names keep their start and end in a hash of the whole (folder names stay portable)."""
ENTRY_DIGEST_BYTES = 6
"""The size of that hash (12 hex digits): existing zoos are named with it."""


def identity_of(seed: int, task: Any, model: Any, training: TrainingSettings) -> dict[str, Any]:
    return {"seed": seed, "task": plain(task), "model": plain(model), "training": training.identity()}


def entry_name(seed: int, task: Any, model: SequenceModel, training: TrainingSettings) -> str:
    """``seed0``, plus ``-<key><value>`` for each non-default task, model and training setting.

    >>> from alignsearch.tasks import NumericTask
    >>> from alignsearch.models import GRU
    >>> entry_name(3, NumericTask(), GRU(8, d_model=32), TrainingSettings.parse(TRAINING_DEFAULTS))
    'seed3-d_model32'
    """
    name = f"seed{seed}{settings_suffix(task, model)}{training_suffix(training)}"
    if len(name) <= MAX_NAME:
        return name
    return with_digest(name, MAX_NAME, ENTRY_DIGEST_BYTES)


def training_suffix(training: TrainingSettings) -> str:
    """``-max_steps100-lr0.002`` for the weight-changing training settings that differ from
    ``conf/training/default.yaml``."""
    return "".join(f"-{key}{format_setting(value)}" for key, value in non_default_training(training).items())


def non_default_training(training: TrainingSettings) -> dict[str, Any]:
    """The weight-changing training settings that differ from ``conf/training/default.yaml``."""
    defaults = TrainingSettings.parse(TRAINING_DEFAULTS).identity()
    return {key: value for key, value in training.identity().items() if not same(value, defaults[key])}


def entry_settings(
    task: Any, model: SequenceModel, training: TrainingSettings | None = None
) -> dict[str, Any]:
    """What names an entry besides its task, model and seed, as flat keys: the non-default task, model and
    (given) training settings, ``{"model.d_model": 64, "training.max_steps": 100}``. A run's results carry
    them, so that runs of other widths or trainings are never taken for seeds of one configuration."""
    out = {f"task.{k}": v for k, v in non_default_settings(task).items()}
    out |= {f"model.{k}": v for k, v in non_default_settings(model).items()}
    if training is not None:
        out |= {f"training.{k}": v for k, v in non_default_training(training).items()}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def same(a: Any, b: Any) -> bool:
    """Equal settings, with ``1`` equal to ``1.0`` and tuples equal to lists."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    numbers = (int, float)
    if (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        return float(a) == float(b)
    return a == b


def first_difference(a: Any, b: Any, key: str = "") -> tuple[str, Any, Any] | None:
    """The first setting (dotted key) where ``a`` and ``b`` differ, with both values."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for k in [*a, *(k for k in b if k not in a)]:
            found = first_difference(a.get(k, "(none)"), b.get(k, "(none)"), f"{key}.{k}" if key else k)
            if found:
                return found
        return None
    return None if same(a, b) else (key, a, b)


def zoo_root(configured: str | Path | None = None) -> Path:
    """``configured`` (``paths.zoo_dir``) if set, else ``$ALIGNSEARCH_ZOO``, else ``./zoo``."""
    return Path(configured or os.environ.get(ENV_ZOO) or "zoo").resolve()


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def short_name(path: Path | str) -> str:
    """``multiobject/gru/seed0``: an entry's path below the zoo's root (how results name the model).

    >>> short_name("/data/zoo/multiobject/gru/seed0")
    'multiobject/gru/seed0'
    """
    return "/".join(Path(path).parts[-3:])
