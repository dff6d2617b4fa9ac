"""Every setting of a command, checked before any work: the composed config in, typed settings out.

``launch`` runs these checks on the config Hydra will compose (for a sweep, on each swept value) before
Hydra creates any folder, so a bad command exits with one line and leaves nothing behind; the entry
points run them again on the config they are given (a Python caller composes its own).

Key typos are caught while composing: ``trainig.max_steps=100`` -> ``trainig.max_steps=100 is not
allowed: expected a known setting (did you mean training.max_steps?)``.
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from alignsearch import zoo
from alignsearch.components import CONF_DIR
from alignsearch.engine.accelerator import check_accelerator
from alignsearch.errors import ConfigError
from alignsearch.settings import AlignmentSettings, HardwareSettings, TrainingSettings, plain, unknown_key

SEARCH_DIRS: ContextVar[tuple[Path, ...]] = ContextVar("search_dirs", default=())
"""The ``hydra.searchpath`` folders of the job :func:`precheck` is checking (before Hydra runs)."""


def search_dirs() -> tuple[Path, ...]:
    """The config folders ``hydra.searchpath`` adds (``file://`` entries), where a partner's ``task`` or
    ``model`` choice is looked up too: the running Hydra job's, or the one :func:`precheck` checks."""
    from hydra.core.hydra_config import HydraConfig

    entries = HydraConfig.get().searchpath if HydraConfig.initialized() else None
    if entries is None:
        return SEARCH_DIRS.get()
    return tuple(Path(e.split("://", 1)[1]) for e in entries if str(e).startswith("file://"))


COMMON_KEYS = ("seed", "ckpt_path", "paths", "task", "model", "training", "hardware", "logger")
TRAIN_KEYS = COMMON_KEYS
RUN_KEYS = (
    *COMMON_KEYS,
    *("alignment", "layer", "site", "n_units", "auto_train", "snapshot", "partner", "similarity", "data"),
)
PRESET_KEYS = ("size", "sizes")
"""Top-level keys of the ``conf/experiment`` presets (the preset's size and its grids)."""
PARTNER_KEYS = ("model", "model_settings", "task", "seed", "layer", "site", "causal_model", "variables")


def check_top_level(cfg: DictConfig, allowed: Sequence[str]) -> None:
    """A ConfigError for a top-level key nothing reads (``+foo=1``)."""
    for key in cfg:
        if key not in allowed and key not in PRESET_KEYS:
            raise unknown_key(str(key), OmegaConf.select(cfg, str(key)), list(allowed))


def model_request(cfg: DictConfig) -> zoo.ModelRequest:
    """The zoo request of a composed config: its task, model, seed, training and hardware settings."""
    return zoo.request(
        cfg.task,
        cfg.model,
        seed=cfg.get("seed"),
        training=TrainingSettings.parse(cfg.training),
        hardware=HardwareSettings.parse(cfg.hardware),
        root=zoo.zoo_root(OmegaConf.select(cfg, "paths.zoo_dir")),
        resume_from=cfg.get("ckpt_path"),
    )


def check_train_config(cfg: DictConfig) -> zoo.ModelRequest:
    """The settings of ``train_task_model.py``; returns the zoo request they make."""
    check_top_level(cfg, TRAIN_KEYS)
    HardwareSettings.parse(cfg.hardware)
    req = model_request(cfg)
    if not req.path.is_dir():
        writable_folder(req.path, "paths.zoo_dir", req.path.parents[2])
    return req


def check_run_config(cfg: DictConfig):
    """The settings of ``run_alignment.py``; returns its member configs, zoo requests and plan."""
    from alignsearch.cli.plan import member_configs, plan_alignment
    from alignsearch.cli.text_run import check_text_config, is_text_run

    check_top_level(cfg, RUN_KEYS)
    HardwareSettings.parse(cfg.hardware)
    AlignmentSettings.parse(cfg.alignment)
    for key in plain(cfg.get("partner") or {}):
        if key not in PARTNER_KEYS:
            raise unknown_key(f"partner.{key}", cfg.partner[key], [f"partner.{k}" for k in PARTNER_KEYS])
    if is_text_run(cfg):  # language models from their folders: loaded (and planned) by the run itself
        return check_text_config(cfg), None, None
    if str(cfg.model.get("_target_")) == "alignsearch.models.lm.TextLM":
        raise ConfigError("data", None, "data=pairs or data=corpus with model=lm (text for a language model)")
    for key in ("auto_train", "similarity"):
        if not isinstance(cfg.get(key), bool):
            raise ConfigError(key, cfg.get(key), "true or false")
    snapshot = cfg.get("snapshot")
    if snapshot is not None and (isinstance(snapshot, bool) or not isinstance(snapshot, int) or snapshot < 1):
        raise ConfigError("snapshot", snapshot, "a training step kept in the zoo entry, or null")
    cfgs = member_configs(cfg)
    requests = [model_request(c) for c in cfgs]
    plan = plan_alignment(cfgs, requests)
    for req in requests:
        if not req.path.is_dir() and not cfg.auto_train:
            raise ConfigError("auto_train", cfg.auto_train, f"true, or a trained zoo entry at {req.path}")
        if not req.path.is_dir():
            writable_folder(req.path, "paths.zoo_dir", req.path.parents[2])
    return cfgs, requests, plan


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
        cfg = compose_checked(config_name, variant)
        with open_dict(cfg):
            hydra = cfg.pop("hydra")
        key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        folder = OmegaConf.select(hydra, key.removeprefix("hydra."), throw_on_resolution_failure=False)
        raw = OmegaConf.to_container(hydra, resolve=False)["sweep" if multirun else "run"]["dir"]
        writable_folder(Path(str(raw).split("${", 1)[0] or "."), key, shown=folder or raw)
        entries = hydra.get("searchpath") or []
        token = SEARCH_DIRS.set(tuple(Path(e.split("://", 1)[1]) for e in entries if e.startswith("file://")))
        try:
            check(cfg)
        finally:
            SEARCH_DIRS.reset(token)
        if runs_here(hydra):  # elsewhere (a Slurm node), the job checks its own machine
            check_accelerator(HardwareSettings.parse(cfg.hardware))


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


NOT_A_KEY = re.compile(r"Could not override '([^']+)'")


def compose_checked(config_name: str, overrides: list[str]) -> DictConfig:
    """Hydra's composition of the job's config; an override of a key that does not exist becomes a
    one-line ConfigError naming the closest key."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException

    with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name=config_name):
        try:
            return compose(config_name, overrides=overrides, return_hydra_config=True)
        except ConfigCompositionException as e:
            match = NOT_A_KEY.search(str(e))
            if not match:
                raise
            key = match.group(1)
            given = next(o for o in overrides if o.split("=", 1)[0] == key)
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


def writable_folder(path: Path, key: str, shown: Any = None) -> None:
    """A ConfigError if ``path`` (or the folder that would hold it) cannot be written."""
    place = path
    while not place.exists() and place != place.parent:
        place = place.parent
    if not place.is_dir() or not os.access(place, os.W_OK | os.X_OK):
        reason = "is a file" if place.exists() and not place.is_dir() else "is not writable"
        raise ConfigError(key, shown or str(path), f"a folder this user can write ({place} {reason})")
