"""Bodies of the entry points, and the Hydra launch around them."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from alignsearch.cli import exits
from alignsearch.components import CONF_DIR, group_choices, search_path_dirs
from alignsearch.errors import ConfigError, ZooError
from alignsearch.naming import with_digest

if TYPE_CHECKING:
    from alignsearch.cli.commands import Command

MULTIRUN_FLAGS = ("-m", "--multirun")


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """Put ``-m``/``--multirun`` first, so that ``model=gru -m seed=1,2`` works like ``-m model=gru seed=1,2``."""
    flags = [a for a in argv if a in MULTIRUN_FLAGS]
    return flags[:1] + [a for a in argv if a not in MULTIRUN_FLAGS]


def check_group_choices(argv: Sequence[str], groups: Sequence[str], conf_dir: Path = CONF_DIR) -> None:
    """Raise a one-line ConfigError for a config-group choice that does not exist (``task=foo``); the
    folders of a ``hydra.searchpath=[file://<dir>]`` override add their choices."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    candidates = [a for a in argv if "=" in a and not a.startswith("-")]
    try:
        overrides = OverridesParser.create().parse_overrides(candidates)
    except Exception:  # noqa: BLE001 - leave malformed overrides to Hydra's own message
        return
    dirs = [conf_dir, *override_search_dirs(overrides)]
    for override in overrides:
        group = override.key_or_group
        if group not in groups or override.is_delete() or override.package is not None:
            continue
        values = (
            list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
        )
        choices = sorted({choice for d in dirs for choice in group_choices(group, d)})
        for value in values:
            if str(value) not in choices:
                raise ConfigError(group, value, f"one of {', '.join(choices)}")


def override_search_dirs(overrides: Sequence) -> list[Path]:
    """The folders a ``hydra.searchpath`` override adds (``file://<dir>``, or ``pkg://<package>``:
    :func:`alignsearch.components.search_path_dirs`), where Hydra looks for config groups too:
    ``hydra.searchpath=[file://my_conf]`` with ``my_conf/task/toy.yaml`` offers ``task=toy``."""
    dirs: list[Path] = []
    for override in overrides:
        if override.key_or_group != "hydra.searchpath" or override.is_delete():
            continue
        value = override.value()
        dirs.extend(search_path_dirs(value if isinstance(value, list) else [value]))
    return dirs


MAX_DIR_NAME = 120
DIR_DIGEST_BYTES = 4
"""A cut run folder name ends in a hash of this size (8 hex digits) of the whole."""


def run_dir_name(overrides: str, job: Sequence[str] = (), sweep_dir: str | None = None) -> str:
    """A folder name for a run from its overrides: ``default`` when there are none; long ones are cut and
    end in a hash of the whole, so that different runs never share a folder.

    In a sweep (``job``: the job's overrides, ``hydra.overrides.task``; ``sweep_dir``: the sweep folder,
    whose ``multirun.yaml`` says which keys the sweep varies, on the command line or in
    ``hydra.sweeper.params``) a long name starts with the swept overrides, so that the cut falls on the
    others and ``seed=1`` stays readable. The name depends only on the overrides and the sweep's keys: a
    rerun of the sweep finds the same folders.

    >>> run_dir_name("")
    'default'
    >>> run_dir_name("n_units=4,seed=1")
    'n_units=4,seed=1'
    """
    name = overrides.replace("/", "_") or "default"
    if len(name) <= MAX_DIR_NAME:
        return name
    whole = name
    if job and sweep_dir is not None:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from alignsearch.cli.sweep import swept_keys

        parser = OverridesParser.create()

        def key(line: str) -> str | None:
            """The key of an override; None where it does not parse."""
            try:
                (override,) = parser.parse_overrides([line])
            except Exception:  # noqa: BLE001 - not an override we can read: not reordered
                return None
            return override.key_or_group

        keys = swept_keys(Path(sweep_dir))  # none without a readable sweep record: the overrides' order
        # the job's swept overrides (in the name's sorted order), then the rest of the name; its items are
        # separated by "," (hydra.job.config.override_dirname.item_sep)
        rest = f",{overrides},"
        swept = [str(line) for line in job if f",{line}," in rest and key(str(line)) in keys]
        for item in swept:
            rest = rest.replace(f",{item},", ",", 1)
        swept.sort(key=lambda item: f",{overrides},".find(f",{item},"))
        name = ",".join([*swept, rest.strip(",")]).strip(",").replace("/", "_")
    return with_digest(name, MAX_DIR_NAME, DIR_DIGEST_BYTES, of=whole)


def register_resolvers() -> None:
    """``${run_dir_name:<overrides>}`` for the Hydra output folders."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("run_dir_name", run_dir_name, replace=True)


HYDRA_ONLY = (".hydra", "run.lock")
"""What a run folder holds when the run was refused in its job (with its ``*.log``): nothing of the run."""


def discard_refused_run_folder(folder: Path) -> None:
    """Remove the folder Hydra made for a run refused in its job, if it holds nothing but Hydra's record
    and log (and the run's lock): a refused command leaves nothing behind. A folder with anything else in
    it (an earlier run's results or checkpoints) is kept as it is."""
    import logging
    import shutil

    if not folder.is_dir() or any(p.name not in HYDRA_ONLY and p.suffix != ".log" for p in folder.iterdir()):
        return
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in [lg for lg in loggers if isinstance(lg, logging.Logger)]:  # not placeholders
        for handler in list(logger.handlers):  # Hydra's job log, closed before it goes
            if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == folder:
                logger.removeHandler(handler)
                handler.close()
    shutil.rmtree(folder, ignore_errors=True)
    for parent in folder.parents:  # the folders Hydra made above it, if now empty (outputs/run_alignment)
        if parent == Path.cwd() or not parent.is_dir() or any(parent.iterdir()):
            break
        parent.rmdir()


def fail(error: Exception) -> NoReturn:
    """Print a user error as one line and exit with status 2 (:data:`alignsearch.cli.exits.EXIT_USAGE`)."""
    exits.fail(error, exits.EXIT_USAGE)


def check_parsable(argv: Sequence[str]) -> None:
    """A ConfigError for an override Hydra's grammar cannot read (``hydra.run.dir=/tmp/my dir (1)``),
    saying how to quote it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        try:
            parser.parse_overrides([arg])
        except OverrideParseException as e:
            key, _, value = arg.partition("=")
            reason = str(e).splitlines()[0]
            raise ConfigError(
                key,
                value,
                f"a value Hydra can read ({reason}): quote it inside the argument, e.g. '{key}=\"{value}\"'",
            ) from None


def check_command(argv: Sequence[str], command: Command) -> list[str]:
    """What ``launch`` checks before Hydra starts: the config-group choices, then the command's checks on
    the config of every job ``argv`` asks for. Raises the first ConfigError or ZooError; returns the
    normalized arguments."""
    from alignsearch.cli.checks import precheck

    argv = normalize_argv(argv)
    register_resolvers()
    check_parsable(argv)
    check_group_choices(argv, command.groups)
    precheck(argv, command.config_name, command.check_function())
    return argv


def launch(command: Command) -> None:
    """Run the command's body on each job's config under Hydra, with our argument conventions and one-line
    errors.

    The command's checks validate a composed config; they run on every job of the command before Hydra
    starts (and creates output folders), so bad input stops with one line and leaves nothing behind.
    The body is imported after them, in the process that runs the job.
    """
    import hydra

    try:
        argv = check_command(sys.argv[1:], command)
    except (ConfigError, ZooError) as e:
        fail(e)
    sys.argv = [sys.argv[0], *argv]

    from hydra.core.hydra_config import HydraConfig

    from alignsearch.cli import sweep
    from alignsearch.engine import interrupt

    @hydra.main(config_path=str(CONF_DIR), config_name=command.config_name, version_base="1.3")
    def _main(cfg):
        if interrupt.INTERRUPTED:  # a signal ended an earlier job of this process: no further job starts
            raise interrupt.INTERRUPTED[-1]
        try:
            with interrupt.signals_interrupt():  # SIGTERM/SIGINT: checkpoint (when training) and stop
                return command.body_function()(cfg)
        except interrupt.Interrupted as e:
            if not sweep.in_multirun():
                raise
            if not e.requeued:  # a requeued Slurm job resumes by itself
                e.resume = f"run the sweep again with hydra.sweep.dir={HydraConfig.get().sweep.dir} to resume"
            interrupt.INTERRUPTED.append(e)  # recorded as interrupted, with the step; the sweep stops here
            return sweep.record_interruption(e)
        except Exception as e:
            if sweep.in_multirun():  # recorded in the job's folder and the sweep's summary; others go on
                return sweep.record_failure(e)
            if isinstance(e, ConfigError | ZooError):
                discard_refused_run_folder(Path(HydraConfig.get().runtime.output_dir))
                fail(e)
            raise

    try:
        with interrupt.signals_interrupt():
            _main()
    except interrupt.Interrupted as e:
        if sweep.STARTED and e.resume == interrupt.RESUME:  # a sweep resumes in its own folder
            e.resume = f"run the sweep again with hydra.sweep.dir={sweep.STARTED[-1]} to resume"
        interrupt.INTERRUPTED.append(e)
    if interrupt.INTERRUPTED:  # one line, and the status a shell gives a process that the signal ended
        stopped = interrupt.INTERRUPTED[-1]
        exits.fail(stopped, stopped.exit_status)
    if sweep.FAILED:
        exits.fail(sweep.FAILED[-1], exits.EXIT_FAILED_JOBS)
