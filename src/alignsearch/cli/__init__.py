"""Bodies of the entry points, and the Hydra launch around them."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from alignsearch.components import CONF_DIR, group_choices
from alignsearch.errors import ConfigError, ZooError

MULTIRUN_FLAGS = ("-m", "--multirun")


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """Put ``-m``/``--multirun`` first, so that ``model=gru -m seed=1,2`` works like ``-m model=gru seed=1,2``."""
    flags = [a for a in argv if a in MULTIRUN_FLAGS]
    return flags[:1] + [a for a in argv if a not in MULTIRUN_FLAGS]


def check_group_choices(argv: Sequence[str], groups: Sequence[str], conf_dir: Path = CONF_DIR) -> None:
    """Raise a one-line ConfigError for a config-group choice that does not exist (``task=foo``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    candidates = [a for a in argv if "=" in a and not a.startswith("-")]
    try:
        overrides = OverridesParser.create().parse_overrides(candidates)
    except Exception:  # noqa: BLE001 - leave malformed overrides to Hydra's own message
        return
    for override in overrides:
        group = override.key_or_group
        if group not in groups or override.is_delete() or override.package is not None:
            continue
        values = (
            list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
        )
        choices = group_choices(group, conf_dir)
        for value in values:
            if str(value) not in choices:
                raise ConfigError(group, value, f"one of {', '.join(choices)}")


MAX_DIR_NAME = 120


def run_dir_name(overrides: str) -> str:
    """A folder name for a run from its overrides: ``default`` when there are none; long ones are cut and
    end in a hash of the whole, so that different runs never share a folder.

    >>> run_dir_name("")
    'default'
    >>> run_dir_name("n_units=4,seed=1")
    'n_units=4,seed=1'
    """
    name = overrides.replace("/", "_") or "default"
    if len(name) <= MAX_DIR_NAME:
        return name
    digest = hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
    return f"{name[: MAX_DIR_NAME - 9]}-{digest}"


def register_resolvers() -> None:
    """``${run_dir_name:<overrides>}`` for the Hydra output folders."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("run_dir_name", run_dir_name, replace=True)


def fail(error: Exception) -> None:
    """Print a user error as one line and exit with status 2."""
    print(f"error: {error}", file=sys.stderr, flush=True)
    sys.exit(2)


def launch(body: Callable, config_name: str, groups: Sequence[str]) -> None:
    """Run ``body(cfg)`` under Hydra with our argument conventions and one-line errors."""
    import hydra

    argv = normalize_argv(sys.argv[1:])
    try:
        check_group_choices(argv, groups)
    except ConfigError as e:
        fail(e)
    sys.argv = [sys.argv[0], *argv]
    register_resolvers()

    from alignsearch.cli import sweep

    @hydra.main(config_path=str(CONF_DIR), config_name=config_name, version_base="1.3")
    def _main(cfg):
        try:
            return body(cfg)
        except Exception as e:
            if sweep.in_multirun():  # recorded in the job's folder and the sweep's summary; others go on
                return sweep.record_failure(e)
            if isinstance(e, ConfigError | ZooError):
                fail(e)
            raise

    _main()
    if sweep.FAILED:
        print(f"error: {sweep.FAILED[-1]}", file=sys.stderr, flush=True)
        sys.exit(1)
