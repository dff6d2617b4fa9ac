"""Every setting of a command, checked before any work: the composed config in, typed settings out.

``launch`` runs these checks on the config Hydra will compose (for a sweep, on each swept value) before
Hydra creates any folder, so a bad command exits with one line and leaves nothing behind; the entry
points run them again on the config they are given (a Python caller composes its own).

Key typos are caught while composing: ``trainig.max_steps=100`` -> ``trainig.max_steps=100 is not
allowed: expected a known setting (did you mean training.max_steps?)``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from alignsearch import zoo
from alignsearch.cli.config_dirs import SEARCH_DIRS
from alignsearch.components import compose_checked, search_path_dirs
from alignsearch.engine.accelerator import check_accelerator
from alignsearch.errors import ConfigError
from alignsearch.settings import (
    AlignmentSettings,
    HardwareSettings,
    RunSettings,
    unknown_key,
)
from alignsearch.zoo import model_request

COMMON_KEYS = ("seed", "ckpt_path", "paths", "task", "model", "training", "hardware", "logger")
TRAIN_KEYS = COMMON_KEYS
RUN_KEYS = tuple(
    dict.fromkeys((*COMMON_KEYS, *RunSettings.KEYS, "alignment", "auto_train", "similarity", "data"))
)
"""The top-level keys of ``run_alignment``: the run settings' own (:attr:`RunSettings.KEYS`, one place)
and what the command reads beside them."""
PRESET_KEYS = ("size", "sizes", "form", "forms")
"""Top-level keys of the ``conf/experiment`` presets: the preset's size and its grids, and the form of
the method a job runs among those a preset compares (``findings_divergence``)."""


def check_top_level(cfg: DictConfig, allowed: Sequence[str]) -> None:
    """A ConfigError for a top-level key nothing reads (``+foo=1``)."""
    for key in cfg:
        if key not in allowed and key not in PRESET_KEYS:
            raise unknown_key(str(key), OmegaConf.select(cfg, str(key)), list(allowed))


def check_train_config(cfg: DictConfig) -> zoo.ModelRequest:
    """The settings of ``train_task_model.py``; returns the zoo request they make."""
    check_top_level(cfg, TRAIN_KEYS)
    HardwareSettings.parse(cfg.hardware)
    req = model_request(cfg)
    if not req.path.is_dir():
        writable_folder(req.path, "paths.zoo_dir", req.path.parents[2])
    return req


def run_requests(cfg: DictConfig) -> list[zoo.ModelRequest]:
    """The zoo request of each task model of ``run_alignment.py`` (the partner's composed by
    :func:`alignsearch.cli.plan.member_configs`), checked as far as no model is needed (the zoo, whether
    missing models may be trained); after :func:`check_common`."""
    from alignsearch.cli.plan import member_configs
    from alignsearch.models.lm import TEXT_MODEL

    if str(cfg.model.get("_target_")) == TEXT_MODEL:
        raise ConfigError("data", None, "data=pairs or data=corpus with model=lm (text for a language model)")
    for key in ("auto_train", "similarity"):
        if not isinstance(cfg.get(key), bool):
            raise ConfigError(key, cfg.get(key), "true or false")
    requests = [model_request(c) for c in member_configs(cfg)]
    for req in requests:
        if not req.path.is_dir() and not cfg.auto_train:
            raise ConfigError("auto_train", cfg.auto_train, f"true, or a trained zoo entry at {req.path}")
        if not req.path.is_dir():
            writable_folder(req.path, "paths.zoo_dir", req.path.parents[2])
    return requests


def check_common(cfg: DictConfig) -> tuple[AlignmentSettings, RunSettings]:
    """What every ``run_alignment.py`` config is checked for first: its keys and typed settings (unknown
    ``partner.*`` keys included); returns the alignment and run settings."""
    check_top_level(cfg, RUN_KEYS)
    HardwareSettings.parse(cfg.hardware)
    return AlignmentSettings.parse(cfg.alignment), RunSettings.parse(cfg)


def check_run_config(cfg: DictConfig) -> None:
    """Every setting of ``run_alignment.py``, before Hydra starts: task runs are planned on the models as
    initialised (:func:`alignsearch.search.planning.plan_run`, which the run itself calls on the trained
    ones); text runs are checked as far as their folders and files allow without loading a model."""
    from alignsearch.cli.text_run import check_text_config, is_text_run
    from alignsearch.inputs import planned_model
    from alignsearch.search.planning import plan_run

    alignment, run = check_common(cfg)
    if is_text_run(cfg):
        check_text_config(cfg)
        return
    models = [planned_model(r) for r in run_requests(cfg)]
    plan_run(models, alignment, run)


# -- before Hydra runs --------------------------------------------------------------------------------------
def precheck(argv: Sequence[str], config_name: str, check: Callable[[DictConfig], Any]) -> None:
    """Compose the config of each job ``argv`` asks for (each swept value at least once) and ``check`` it.

    Raises the first ConfigError; arguments this cannot follow (Hydra's own flags) are left to Hydra.
    """
    if any(a.startswith("-") and a not in ("-m", "--multirun") for a in argv):
        return
    multirun = any(a in ("-m", "--multirun") for a in argv)
    overrides = [a for a in argv if not a.startswith("-")]
    for variant in sweep_variants(overrides):
        cfg = compose_checked(config_name, variant, hydra=True)
        with open_dict(cfg):
            hydra = cfg.pop("hydra")
        if not multirun:
            check_sweep_without_multirun(hydra, overrides, config_name)
        key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        folder = OmegaConf.select(hydra, key.removeprefix("hydra."), throw_on_resolution_failure=False)
        unresolved = OmegaConf.to_container(hydra, resolve=False)
        assert isinstance(unresolved, dict)  # hydra's node is a mapping
        raw = unresolved["sweep" if multirun else "run"]["dir"]
        writable_folder(Path(str(raw).split("${", 1)[0] or "."), key, shown=folder or raw)
        entries = hydra.get("searchpath") or []
        token = SEARCH_DIRS.set(search_path_dirs(entries))
        try:
            check(cfg)
        finally:
            SEARCH_DIRS.reset(token)
        if runs_here(hydra):  # elsewhere (a Slurm node), the job checks its own machine
            check_accelerator(HardwareSettings.parse(cfg.hardware))
        elif multirun and "signal_delay_s" in (hydra.get("launcher") or {}):  # Slurm's time limit and signal
            from alignsearch.cli.slurm_launcher import check_time_limit

            check_time_limit(hydra.launcher)


def check_sweep_without_multirun(hydra: DictConfig, overrides: Sequence[str], config_name: str) -> None:
    """A ConfigError if the config sweeps (a preset's ``hydra.sweeper.params``) but the command was not
    given ``-m``: Hydra would silently run one job of the sweep's first values."""
    params = OmegaConf.to_container(hydra.get("sweeper") or {}, resolve=False)
    swept = list((params or {}).get("params") or {}) if isinstance(params, dict) else []
    if not swept:
        return
    preset = next((o for o in overrides if o.lstrip("+").split("=", 1)[0] == "experiment"), None)
    key, value = ("experiment", preset.split("=", 1)[1]) if preset else ("hydra.sweeper.params", swept)
    command = " ".join(["python", f"{config_name}.py", "-m", *overrides])
    raise ConfigError(
        key,
        value,
        f"a sweep, which needs -m (it sweeps {', '.join(map(str, swept))}): {command}",
    )


LOCAL_LAUNCHERS = (
    "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
    "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",
)
"""Hydra launchers that run the jobs on this machine."""


def runs_here(hydra: DictConfig) -> bool:
    """Whether the command's launcher runs its jobs on this machine (not, say, on Slurm's nodes)."""
    return OmegaConf.select(hydra, "launcher._target_") in LOCAL_LAUNCHERS


def sweep_variants(overrides: list[str]) -> Iterator[list[str]]:
    """The first job of a sweep, then one job per further value of each swept key.

    >>> list(sweep_variants(["model=gru", "seed=1,2", "n_units=4,8"]))
    [['model=gru', 'seed=1', 'n_units=4'], ['model=gru', 'seed=2', 'n_units=4'], ['model=gru', 'seed=1', 'n_units=8']]
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    values = []
    for text, override in zip(overrides, parsed, strict=True):
        if override.is_sweep_override():
            key = text.split("=", 1)[0]
            values.append([f"{key}={v}" for v in override.sweep_string_iterator()])
        else:
            values.append([text])
    first = [v[0] for v in values]
    yield first
    for i, options in enumerate(values):
        for option in itertools.islice(options, 1, None):
            yield [*first[:i], option, *first[i + 1 :]]


def writable_folder(path: Path, key: str, shown: Any = None) -> None:
    """A ConfigError if ``path`` (or the folder that would hold it) cannot be written."""
    place = path
    while not place.exists() and place != place.parent:
        place = place.parent
    if not place.is_dir() or not os.access(place, os.W_OK | os.X_OK):
        reason = "is a file" if place.exists() and not place.is_dir() else "is not writable"
        raise ConfigError(key, shown or str(path), f"a folder this user can write ({place} {reason})")
