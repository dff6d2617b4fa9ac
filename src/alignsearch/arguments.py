"""The Python API's arguments (:mod:`alignsearch.api`): checked, named as written in their errors, and
turned into the run core's typed inputs, the way the command line turns its overrides into them.

- :func:`arguments`: a ConfigError about a setting an argument gave names the argument as written
  (``variables``, not its config key ``alignment.variables``);
- :func:`checked_overrides` and :func:`composed`: command-line overrides, parsed as Hydra parses them,
  into the entry point's checked config;
- :func:`run_inputs`: ``api.align``'s and ``api.scan``'s arguments as the run core takes them, every
  override counting or refused (:func:`check_run_overrides`);
- :func:`work_dir`, :func:`writable_file`: the folder a call writes into and the files it saves, or one
  ConfigError line before any work.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from alignsearch import inputs
from alignsearch.call_checks import Owned, check_overrides
from alignsearch.components import compose_checked
from alignsearch.errors import ConfigError
from alignsearch.search.spec import RunData, RunModel
from alignsearch.settings import AlignmentSettings, HardwareSettings, RunSettings, plain, unknown_key
from alignsearch.tasks.counterfactual import make_pairs


@contextmanager
def arguments(names: Mapping[str, str]) -> Iterator[None]:
    """ConfigErrors about settings the caller gave as arguments name the argument: ``names`` maps a
    config key (``alignment.variables``) to the argument as written (``variables``)."""
    try:
        yield
    except ConfigError as e:
        if e.key in names:
            raise e.as_argument(names[e.key]) from None
        raise


def composed(name: str, overrides: Sequence[str]) -> DictConfig:
    """The composed config of an entry point with ``overrides`` (checked by :func:`checked_overrides`),
    as the command line composes and checks it: what ``api.config`` gives."""
    return compose_checked(name, checked_overrides(overrides))


OVERRIDES_ALLOWED = "a list of command-line overrides, each key=value"


def checked_overrides(overrides: Any) -> list[str]:
    """``overrides`` as a list, or a one-line ConfigError about the argument: a list (or tuple) of
    command-line overrides as Hydra parses them (``["alignment.lr=0.1"]``), not one string."""
    from hydra.errors import OverrideParseException

    if isinstance(overrides, str) or not isinstance(overrides, list | tuple):
        given = isinstance(overrides, str) and "=" in overrides
        example = f"[{overrides!r}]" if given else "['alignment.lr=0.1']"
        raise ConfigError(
            "overrides", overrides, f"{OVERRIDES_ALLOWED} (e.g. overrides={example})", (list, tuple)
        ).as_argument("overrides")
    for item in overrides:
        if not isinstance(item, str):
            raise ConfigError(
                "overrides", item, f"{OVERRIDES_ALLOWED}, a str (e.g. ['alignment.lr=0.1'])", (str,)
            ).as_argument("overrides")
        try:
            override_parser().parse_overrides([item])
        except OverrideParseException as e:
            lines = [line for line in str(e).splitlines() if line.strip()]
            reason = lines[1] if len(lines) > 1 else lines[0] if lines else type(e).__name__
            raise ConfigError(
                "overrides", item, f"{OVERRIDES_ALLOWED} (e.g. ['alignment.lr=0.1']): {reason}"
            ).as_argument("overrides") from None
    return list(overrides)


def override_parser():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def common_overrides(zoo_dir: str | Path | None, out_dir: str | Path) -> list[str]:
    extra = ["hardware.progress_bar=false", f"paths.output_dir={quoted_path(out_dir)}"]
    return extra + ([f"paths.zoo_dir={quoted_path(zoo_dir)}"] if zoo_dir else [])


def quoted_path(path: str | Path) -> str:
    """``path`` as an override's value that Hydra reads back as it is: quoted, so that a folder named
    with ``,`` ``=`` ``(`` or spaces is one path, and ``${`` is not an interpolation.

    >>> quoted_path("/tmp/runs (1),a=b")
    "'/tmp/runs (1),a=b'"
    """
    text = str(path).replace("'", "\\'").replace("${", "\\${")
    return f"'{text}'"


def pair_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`alignsearch.api.pairs`' keyword options as :func:`make_pairs` takes them (``position`` as a
    :class:`~alignsearch.settings.Position`), or a one-line ConfigError naming the option."""
    from alignsearch.settings import Position, position_of, run_position

    known = keyword_options(make_pairs)
    for key, value in options.items():
        if key not in known:
            raise unknown_key(key, value, known).as_argument(key)
    options = dict(options)
    position = options.get("position")
    if position is not None and not isinstance(position, Position):
        with arguments({"position": "position"}):
            options["position"] = position_of(run_position("position", position))
    return options


def keyword_options(function: Any) -> list[str]:
    """The keyword-only parameters of ``function``: what a call's ``**options`` may name."""
    import inspect

    parameters = inspect.signature(function).parameters.values()
    return [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]


def writable_file(path: Any, key: str) -> Path:
    """``path`` as a Path to a file that can be written (its folder made if missing), or a one-line
    ConfigError about the argument ``key``."""
    allowed = "the path of a file to write (a str or Path)"
    if isinstance(path, bool) or not isinstance(path, str | Path) or not str(path):
        raise ConfigError(key, path, allowed, (str, Path)).as_argument(key)
    file = Path(path)
    if file.is_dir():
        raise ConfigError(key, path, f"{allowed}: it is a folder").as_argument(key)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise unwritable(key, path, e) from None
    if not os.access(file.parent, os.W_OK | os.X_OK):
        raise ConfigError(
            key, path, f"a path this user can write ({file.parent} is not writable)"
        ).as_argument(key)
    return file


def unwritable(key: str, path: Any, error: OSError) -> ConfigError:
    """The one-line ConfigError for a ``path`` the system would not write (``error``)."""
    place = Path(path)
    while not place.exists() and place != place.parent:
        place = place.parent
    if place.exists() and not place.is_dir():
        reason = f"{place} is a file"
    else:
        reason = f"{error.strerror or type(error).__name__}: {error.filename or path}"
    return ConfigError(key, path, f"a path this user can write ({reason})").as_argument(key)


@contextmanager
def work_dir(out_dir: str | Path | None) -> Iterator[Path]:
    """``out_dir`` (kept), or a temporary folder removed on leaving (also on an error); an ``out_dir`` that
    is not a folder this user can write is a one-line ConfigError, before any work."""
    if out_dir is not None and not (isinstance(out_dir, str) and not out_dir):
        if isinstance(out_dir, bool) or not isinstance(out_dir, str | Path):
            raise ConfigError(
                "out_dir", out_dir, "a folder (a str or Path), or None for a temporary one", (str, Path)
            ).as_argument("out_dir")
        folder = Path(out_dir)
        if folder.exists() and not folder.is_dir():
            raise ConfigError("out_dir", out_dir, "a folder (it is a file)").as_argument("out_dir")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise unwritable("out_dir", out_dir, e) from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError("out_dir", out_dir, "a folder this user can write").as_argument("out_dir")
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="alignsearch-") as tmp:
        yield Path(tmp)


def argument_names(settings: Mapping[str, Any]) -> dict[str, str]:
    """Config keys -> the arguments of :func:`alignsearch.api.align` and :func:`alignsearch.api.scan` that
    set them."""
    return {
        "seed": "seed", "layer": "layer", "site": "site", "position": "position", "n_units": "n_units",
        "alignment.variables": "variables", "alignment.causal_model": "causal_model",
        "hardware.progress_bar": "progress", "min_task_accuracy": "min_task_accuracy",
        **{f"alignment.{k}": k for k in settings},
    }  # fmt: skip


def run_inputs(
    models: Any,
    work: Path,
    names: Mapping[str, str],
    *,
    task: str | None,
    alignment: str,
    layer: int | str,
    site: str | None,
    position: int | str | None,
    variables: Any,
    n_units: Any,
    causal_model: str,
    seed: int,
    overrides: Sequence[str],
    data: Any,
    progress: bool,
    settings: Mapping[str, Any],
    call: str = "api.align",
    min_task_accuracy: float | None = None,
) -> tuple[list[RunModel], AlignmentSettings, RunSettings, HardwareSettings, RunData | None]:
    """:func:`alignsearch.api.align`'s and :func:`alignsearch.api.scan`'s arguments as the run core takes
    them, checked by the command line's rules (errors name the arguments), overrides by
    :func:`check_run_overrides`; ``min_task_accuracy`` None: the command line's (an override's, else
    ``conf/run_alignment.yaml``'s)."""
    if not isinstance(alignment, str):
        raise ConfigError("alignment", alignment, "an alignment name (das, mas, ...)", (str,)).as_argument(
            "alignment"
        )
    source = inputs.run_data(data, variables, cache_dir=work / "predictions")
    label = None if source is None else source.label
    run_models = inputs.run_models(models, task, label)
    cfg = composed("run_alignment", [f"alignment={alignment}", *common_overrides(None, work), *overrides])
    with arguments(names):
        values = plain(cfg.alignment)
        for key in settings:
            if key not in values:
                raise unknown_key(key, settings[key], list(values))
        values |= dict(settings) | {"variables": variables, "causal_model": causal_model}
        a = AlignmentSettings.parse(values)
        run = RunSettings.parse(
            {
                "seed": seed,
                "layer": layer,
                "site": site,
                "n_units": n_units,
                "partner": plain(cfg.partner),
                "position": position,
                "min_task_accuracy": (
                    plain(cfg.min_task_accuracy) if min_task_accuracy is None else min_task_accuracy
                ),
            }
        )
        hardware = HardwareSettings.parse({**plain(cfg.hardware), "progress_bar": progress})
    given = {  # what the arguments set (each checked above by its own rule), by config key
        "alignment": alignment, "seed": seed, "layer": layer, "site": site, "position": position,
        "n_units": n_units, "alignment.variables": variables, "alignment.causal_model": causal_model,
        "hardware.progress_bar": progress, **{f"alignment.{k}": v for k, v in settings.items()},
    }  # fmt: skip
    if min_task_accuracy is not None:  # None leaves it to an override
        given["min_task_accuracy"] = min_task_accuracy
    check_run_overrides(cfg, overrides, call, names, given)
    return run_models, a, run, hardware, source


RUN_READS = (
    "alignment",
    "partner.layer",
    "partner.site",
    "partner.causal_model",
    "partner.variables",
    "hardware",
    "min_task_accuracy",
)
"""What ``api.align`` and ``api.scan`` read from ``overrides`` (``alignment`` and ``hardware``: the group's
choice and its keys; ``min_task_accuracy``, which the zoo models' training must have reached); the rest of ``run_alignment``'s config is for the command line, which finds the
models, their task and training, the partner and the loggers itself."""


def check_run_overrides(
    cfg: DictConfig, overrides: Sequence[str], call: str, names: Mapping[str, str], given: Mapping[str, Any]
) -> None:
    """Every override of ``api.align`` or ``api.scan`` counts, or the call is refused before any work
    (:func:`alignsearch.call_checks.check_overrides`): one that sets what an argument sets (``seed=3``,
    ``alignment.variables=[phase]``, ``alignment.max_steps=20`` beside ``max_steps=30``) may only repeat
    the argument's value; one of a key the call does not read (``model.d_model``, ``training.*``,
    ``partner.seed``, ``snapshot``) is refused; where a scan aligns is its ``sites`` and ``positions``."""
    owned = {key: Owned(names.get(key, key), value, group=key == "alignment") for key, value in given.items()}
    fixed = {"paths.output_dir": "give out_dir= instead"}
    if call == "api.scan":
        where = "a scan's sites= and positions= say where it aligns"
        fixed |= dict.fromkeys(("layer", "site", "position"), where)
        owned = {k: v for k, v in owned.items() if k not in fixed}
    check_overrides(
        cfg, overrides, call=call, owned=owned, reads=RUN_READS, fixed=fixed,
        not_read="the models come with their task and training; a partner is the second of models",
    )  # fmt: skip
