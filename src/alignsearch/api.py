"""The Python API: what the command line does, as functions a notebook can call, on the same run core
(:func:`alignsearch.search.run.run_alignment`) and the same checks.

    from alignsearch import api

    gru = api.model("gru", seed=0)                              # from the zoo; trained first if missing
    result = api.align(gru, variables=["count"], n_units=16)    # DAS on layer.0
    print(result.table())                                       # IIA per direction and variable
    result.save("das_count.pt")
    saved = api.load_alignment("das_count.pt")
    pairs = api.pairs(gru, "updown", "count", n=500, seed=7)
    api.iia(saved, [gru], pairs)                                # {"iia": ..., "token_iia": ...}

A model can be a zoo entry (:func:`model`), any :class:`~alignsearch.models.SequenceModel` or plain
``torch.nn.Module`` (token ids ``(batch, length)`` -> logits ``(batch, length, vocab)``; its site a module
path) already in memory with ``task=``, or a language model (:func:`language_model`, from a folder or
from a HuggingFace model and tokenizer in memory) with ``data=``: text pairs (:func:`text_pairs`), or a
corpus (:func:`corpus`) for behavioural MAS between two language models.

Settings are the command line's, composed from ``conf/`` and checked by the same rules, so a notebook and
a sweep that say the same thing run the same thing: ``api.align(gru, alignment="revres", max_steps=300)``
is ``python run_alignment.py alignment=revres alignment.max_steps=300``. A wrong argument is a one-line
ConfigError naming the argument as written.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from alignsearch import inputs, zoo
from alignsearch.call_checks import Owned, check_overrides, check_pairs_fit
from alignsearch.components import build_task, compose_checked
from alignsearch.engine.world import as_found
from alignsearch.errors import ConfigError
from alignsearch.models import SequenceModel
from alignsearch.search.records import AlignmentRecord, records_table
from alignsearch.search.run import RunResult, run_alignment
from alignsearch.search.saved import SavedAlignment, save_alignment
from alignsearch.search.saved import load_alignment as load_saved
from alignsearch.search.scan import ScanResult, run_scan
from alignsearch.search.spec import RunData, RunModel
from alignsearch.search.text_data import CorpusSource, TextPairSource
from alignsearch.seeding import generator
from alignsearch.settings import (
    AlignmentSettings,
    HardwareSettings,
    RunSettings,
    ScanSettings,
    plain,
    positive_int,
    seed_value,
    unknown_key,
)
from alignsearch.tasks import causal_model_for
from alignsearch.tasks.counterfactual import CounterfactualPairs, make_pairs
from alignsearch.text.pairs import PairsData, TextPairs

__all__ = [
    "AlignmentResult",
    "align",
    "config",
    "corpus",
    "iia",
    "language_model",
    "load_alignment",
    "model",
    "own_model",
    "pairs",
    "scan",
    "sites",
    "text_pairs",
]

OWN = zoo.OWN
PROBE_SEQUENCES = inputs.PROBE_SEQUENCES
PYTHON_ROWS = inputs.PYTHON_ROWS
MODELS_ALLOWED = inputs.MODELS_ALLOWED
weights_digest = zoo.weights_digest
pairs_digest = inputs.pairs_digest
corpus_digest = inputs.corpus_digest


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


def config(name: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The composed config of an entry point (``train_task_model`` or ``run_alignment``) with overrides,
    checked as the command line checks them (``model=gruu``: a one-line ConfigError listing the models)."""
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
            _override_parser().parse_overrides([item])
        except OverrideParseException as e:
            lines = [line for line in str(e).splitlines() if line.strip()]
            reason = lines[1] if len(lines) > 1 else lines[0] if lines else type(e).__name__
            raise ConfigError(
                "overrides", item, f"{OVERRIDES_ALLOWED} (e.g. ['alignment.lr=0.1']): {reason}"
            ).as_argument("overrides") from None
    return list(overrides)


def _override_parser():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def _common(zoo_dir: str | Path | None, out_dir: str | Path) -> list[str]:
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


@as_found(again="call again to go on (a training resumes from its last checkpoint)")
def model(
    model: str = "gru",
    task: str = "multiobject",
    seed: int = 0,
    *,
    zoo_dir: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> zoo.ZooEntry:
    """A trained task model from the zoo (trained first, under the zoo's lock, if it is missing).

    ``overrides`` are command-line style: ``["model.d_model=64", "training.max_steps=2000"]``: the
    model's, task's, training's and hardware's settings (and ``ckpt_path``); one that sets what an
    argument sets (``seed=3``, ``model=lstm``) may only repeat it, else it is refused naming the argument.
    """
    overrides = checked_overrides(overrides)
    with arguments({"seed": "seed"}):
        seed_value("seed", seed)
    for name, value in (("model", model), ("task", task)):
        if not isinstance(value, str):
            raise ConfigError(name, value, "a config name (e.g. gru, multiobject)", (str,)).as_argument(name)
    cfg = config(
        "train_task_model",
        [f"model={model}", f"task={task}", f"seed={seed}", *_common(zoo_dir, "."), *overrides],
    )
    check_overrides(
        cfg, overrides, call="api.model",
        owned={"model": Owned("model", model, group=True), "task": Owned("task", task, group=True),
               "seed": Owned("seed", seed)},
        reads=("model", "task", "training", "hardware", "ckpt_path"),
        fixed={"paths.zoo_dir": "give zoo_dir= instead", "paths.output_dir": "api.model writes into the zoo"},
    )  # fmt: skip
    return zoo.get_or_train(zoo.model_request(cfg), verbose=False)


@as_found
@torch.no_grad()
def own_model(
    model: SequenceModel | torch.nn.Module,
    task: str = "multiobject",
    *,
    name: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> zoo.ZooEntry:
    """A model trained elsewhere, as :func:`align`, :func:`iia` and :func:`pairs` take a zoo model
    (they call this for a model given with ``task=``).

    ``model`` is a :class:`~alignsearch.models.SequenceModel` (its sites, or module paths) or any
    ``torch.nn.Module`` mapping token ids ``(batch, length)`` to logits ``(batch, length, vocab)`` (its
    sites are module paths), that reads ``task``'s token ids (``entry.task.vocab``; ``overrides`` change
    the task's settings, command-line style: ``["task.max_count=9"]``). A model that reads fewer ids
    than the vocabulary has is refused before it runs. Results name it ``<task>/<name>/sha256-<digest>``,
    by the digest of its weights, so another set of weights is another model. Like a zoo model it is
    frozen (eval mode, no gradients) while a call runs it; after the call, the module has its own
    ``requires_grad`` and ``training`` flags again. Its trial accuracy on the task is measured
    (``entry.metrics["val_trial_acc"]``): a model that reads the ids differently scores near 0 there::

        entry = own_model(my_gru, "multiobject", name="my_gru")
        print(align(entry, variables=["count"], n_units=16).table())
    """
    from alignsearch.models.wrapped import as_sequence_model

    if not isinstance(task, str):
        raise ConfigError("task", task, "a task name (e.g. multiobject)", (str,)).as_argument("task")
    overrides = checked_overrides(overrides)
    model = as_sequence_model(model, name=name)
    cfg = config("train_task_model", [f"task={task}", *overrides])
    check_overrides(
        cfg, overrides, call="api.own_model", owned={"task": Owned("task", task, group=True)}, reads=("task",),
        not_read="the model is given: only its task's settings are read",
    )  # fmt: skip
    return inputs.own_entry(model, build_task(cfg.task), name)


@as_found
def pairs(
    task,
    causal_model: str = "updown",
    variable: str = "count",
    n: int = 1000,
    seed: int = 0,
    **options: Any,
) -> CounterfactualPairs:
    """``n`` counterfactual pairs of ``task`` (a task, or a zoo entry for its task) for a variable of a
    causal model (see :func:`alignsearch.tasks.counterfactual.make_pairs` for ``split``, ``stepwise``
    and the rest)."""
    if isinstance(task, zoo.ZooEntry):
        task = task.task
    if not hasattr(task, "vocab") or not hasattr(task, "sample"):
        raise ConfigError("task", type(task).__name__, "a task (entry.task) or a zoo entry")
    with arguments({"n": "n", "seed": "seed"}):
        positive_int("n", n)
        seed_value("seed", seed)
    options = _pair_options(options)
    with arguments(
        {"causal_model": "causal_model", "variable": "variable", "split": "split", "position": "position"}
    ):
        return make_pairs(
            task, causal_model_for(task, causal_model), variable, n, generator(seed, "api-pairs"), **options
        )


def _pair_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`pairs`' keyword options as :func:`make_pairs` takes them (``position`` as a
    :class:`~alignsearch.settings.Position`), or a one-line ConfigError naming the option."""
    from alignsearch.settings import Position, position_of, run_position

    known = _keyword_options(make_pairs)
    for key, value in options.items():
        if key not in known:
            raise unknown_key(key, value, known).as_argument(key)
    options = dict(options)
    position = options.get("position")
    if position is not None and not isinstance(position, Position):
        with arguments({"position": "position"}):
            options["position"] = position_of(run_position("position", position))
    return options


def _keyword_options(function: Any) -> list[str]:
    """The keyword-only parameters of ``function``: what a call's ``**options`` may name."""
    import inspect

    parameters = inspect.signature(function).parameters.values()
    return [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]


class Scores(dict):
    """What :func:`iia` gives: a dict of ``iia``, ``token_iia`` and ``iia_by_position`` (the IIA of the
    pairs intervened at each base position, ``{"5": 0.9, ...}``), printed short: the scores to 4 digits
    and the positions as their number (``scores["iia_by_position"]`` holds them).

    >>> Scores({"iia": 0.05, "token_iia": 0.63751, "iia_by_position": {"3": 0.1, "4": 0.0}})
    {'iia': 0.05, 'token_iia': 0.6375, 'iia_by_position': {...2 positions}}
    """

    def __repr__(self) -> str:
        def short(value: Any) -> str:
            if isinstance(value, Mapping):
                return f"{{...{len(value)} positions}}"
            return repr(round(value, 4)) if isinstance(value, float) else repr(value)

        return "{" + ", ".join(f"{key!r}: {short(value)}" for key, value in self.items()) + "}"


class AlignmentResult(RunResult):
    """A finished alignment (:class:`~alignsearch.search.run.RunResult`: its plan, flat config, records,
    ``results.json``'s content, history and kept weights), with what a notebook asks of it."""

    @classmethod
    def of(cls, run: RunResult) -> AlignmentResult:
        return cls(**{f.name: getattr(run, f.name) for f in dataclasses.fields(run)})

    def record(self, direction: str = "0>0", variable: str | None = None) -> AlignmentRecord:
        """The record of one direction and variable (the first variable by default)."""
        variable = variable or self.plan.named_variables[0]
        for r in self.records:
            if r.direction == direction and r.variable == variable:
                return r
        shown = ", ".join(r.name for r in self.records)
        raise ConfigError("direction", f"{direction}/{variable}", f"one of the records: {shown}")

    def iia(self, direction: str = "0>0", variable: str | None = None) -> float:
        """Validation IIA of one direction (and variable; the first by default)."""
        return self.record(direction, variable).iia

    def table(self) -> str:
        """The records as the command line prints them."""
        return records_table(self.records)

    def save(self, path: str | Path) -> Path:
        """The trained alignment written to ``path`` (its folder made if missing), read again by
        :func:`load_alignment`; a path that cannot be written is a one-line ConfigError."""
        file = _writable_file(path, "path")
        try:
            save_alignment(file, self.plan, self.state, self.config)
        except OSError as e:
            raise _unwritable("path", path, e) from None
        return file

    @as_found
    def load(self) -> SavedAlignment:
        """The trained alignment as :func:`load_alignment` gives it (without a file)."""
        with tempfile.TemporaryDirectory() as tmp:
            return load_saved(self.save(Path(tmp) / "alignment.pt"))


def _writable_file(path: Any, key: str) -> Path:
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
        raise _unwritable(key, path, e) from None
    if not os.access(file.parent, os.W_OK | os.X_OK):
        raise ConfigError(
            key, path, f"a path this user can write ({file.parent} is not writable)"
        ).as_argument(key)
    return file


def _unwritable(key: str, path: Any, error: OSError) -> ConfigError:
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
def _work_dir(out_dir: str | Path | None) -> Iterator[Path]:
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
            raise _unwritable("out_dir", out_dir, e) from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError("out_dir", out_dir, "a folder this user can write").as_argument("out_dir")
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="alignsearch-") as tmp:
        yield Path(tmp)


@as_found
def align(
    models: Any,
    *,
    task: str | None = None,
    alignment: str = "das",
    layer: int | str = 0,
    site: str | None = None,
    position: int | str | None = None,
    variables: list[str] | tuple[str, ...] = ("count",),
    n_units: int | list[int] = 16,
    causal_model: str = "updown",
    seed: int = 0,
    out_dir: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    data: PairsData | TextPairSource | CorpusSource | None = None,
    progress: bool = True,
    **settings: Any,
) -> AlignmentResult:
    """Align a site of one model (DAS) or two (MAS and its family) and evaluate it.

    ``models``: one model or a list of two, each a zoo entry, a SequenceModel or ``torch.nn.Module``
    reading ``task`` (its site a module path: ``site="rnn"``), or a language model with ``data``:
    counterfactual pairs of text (:func:`text_pairs`; the variable is named ``variables[0]``) or a
    corpus (:func:`corpus`; two models).

    ``position`` moves every prompt (or task sequence) of every pair to one position (``"last"``, ``-2``,
    ``"marker:?:-1"``; None: each pair's own). ``settings`` are alignment keys (``max_steps=300``,
    ``lr=0.01``, ``stop_at=None``: exactly ``max_steps`` steps); ``overrides`` anything else, command-line
    style (``["partner.variables=[demo_count]"]``): ``alignment=<name>``, ``alignment.<key>``,
    ``partner.layer|site|causal_model|variables`` and ``hardware``. Every override counts or is refused:
    one of a key an argument sets (``seed=3``, ``n_units=4``, ``alignment.variables=[phase]``,
    ``alignment.max_steps=20`` beside ``max_steps=30``) may only repeat what the argument says, else a
    one-line ConfigError names the argument to give instead; one of a key this call does not read (the
    model's, task's or training's, ``snapshot``, ``partner.seed``) is refused. With two models the second
    is the partner. ``seed`` is an integer in [0, 2**32 - 1].
    ``progress`` (True or False) shows training progress (a bar on a terminal, a line every few seconds
    otherwise).
    Training checkpoints and ``results.json`` go to ``out_dir``, where they stay (and a finished run is
    found again); without one they go to a temporary folder removed when the call ends.
    """
    names = _argument_names(settings)
    overrides = checked_overrides(overrides)
    with _work_dir(out_dir) as work:
        run_models, a, run, hardware, source = _inputs(
            models, work, names, task=task, alignment=alignment, layer=layer, site=site, position=position,
            variables=variables, n_units=n_units, causal_model=causal_model, seed=seed,
            overrides=overrides, data=data, progress=progress, settings=settings,
        )  # fmt: skip
        with arguments(names):
            result = run_alignment(
                run_models, a, run, hardware, work, data=source, verbose=False,
                similarity_baselines=False,
            )  # fmt: skip
    return AlignmentResult.of(result)


@as_found
def scan(
    models: Any,
    *,
    data: PairsData | TextPairSource | None = None,
    task: str | None = None,
    sites: list[str] | tuple[str, ...] | None = None,
    positions: list[int | str] | tuple[int | str, ...] | None = None,
    steps: int = 50,
    controls: list[str] | tuple[str, ...] = ("random_subspace",),
    then_align: bool = False,
    top: int = 3,
    alignment: str = "das",
    variables: list[str] | tuple[str, ...] = ("count",),
    n_units: int | list[int] = 16,
    causal_model: str = "updown",
    seed: int = 0,
    out_dir: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    progress: bool = True,
    **settings: Any,
) -> ScanResult:
    """Where does the variable live? A short alignment (``steps`` steps) at every site x position, the
    command line's ``python -m alignsearch.scan`` (:mod:`alignsearch.search.scan`, the same code).

    ``sites``: names or module paths (None: ``embedding`` and every ``layer.<i>``); ``positions``: where
    every prompt of a pair is intervened on, ``"last"``, ``-2``, ``"marker:<text>[:<offset>]"`` or
    ``"any"`` (each pair's own; None: ``["last", -2, -3]`` on text, ``["any"]`` for task models);
    ``controls`` run beside each cell; ``then_align``: then the full alignment (``settings``, e.g.
    ``max_steps=1000``) at the best cell (``result.aligned``). The rest as :func:`align` (overrides
    included: where a scan aligns is ``sites`` and ``positions``, never ``layer``/``site``/``position``
    overrides). ``progress``
    prints a line per cell and the ``top`` best cells. The result has ``.cells``, ``.best()``,
    ``.table()`` and ``.csv()``; with ``out_dir`` the cells, ``scan.csv``, ``scan.png`` and ``scan.json``
    stay there (and a finished cell is found again)::

        result = api.scan(lm, data=pairs, sites=["layer.0", "layer.1"], positions=["last", -2], steps=50)
        print(result.table(3)); result.best().site
    """
    names = _argument_names(settings) | {
        f"scan.{k}": k for k in ("sites", "positions", "steps", "controls", "then_align", "top")
    }
    overrides = checked_overrides(overrides)
    with _work_dir(out_dir) as work:
        run_models, a, run, hardware, source = _inputs(
            models, work, names, task=task, alignment=alignment, layer=0, site=None, position=None,
            variables=variables, n_units=n_units, causal_model=causal_model, seed=seed,
            overrides=overrides, data=data, progress=progress, settings=settings, call="api.scan",
        )  # fmt: skip
        with arguments(names):
            settings_of_scan = ScanSettings.parse(
                {"sites": sites, "positions": positions, "steps": steps, "controls": controls,
                 "then_align": then_align, "top": top}
            )  # fmt: skip
            from alignsearch.report.plots import scan_heatmap  # matplotlib only when a scan runs

            return run_scan(
                run_models, a, run, hardware, work, settings_of_scan, data=source, verbose=progress,
                heatmap=scan_heatmap,
            )  # fmt: skip


def _argument_names(settings: Mapping[str, Any]) -> dict[str, str]:
    """Config keys -> the arguments of :func:`align` and :func:`scan` that set them."""
    return {
        "seed": "seed", "layer": "layer", "site": "site", "position": "position", "n_units": "n_units",
        "alignment.variables": "variables", "alignment.causal_model": "causal_model",
        "hardware.progress_bar": "progress", **{f"alignment.{k}": k for k in settings},
    }  # fmt: skip


def _inputs(
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
) -> tuple[list[RunModel], AlignmentSettings, RunSettings, HardwareSettings, RunData | None]:
    """:func:`align`'s and :func:`scan`'s arguments as the run core takes them, checked by the command
    line's rules (errors name the arguments), overrides by :func:`_check_run_overrides`."""
    if not isinstance(alignment, str):
        raise ConfigError("alignment", alignment, "an alignment name (das, mas, ...)", (str,)).as_argument(
            "alignment"
        )
    source = inputs.run_data(data, variables, cache_dir=work / "predictions")
    label = None if source is None else source.label
    run_models = inputs.run_models(models, task, label)
    cfg = config("run_alignment", [f"alignment={alignment}", *_common(None, work), *overrides])
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
            }
        )
        hardware = HardwareSettings.parse({**plain(cfg.hardware), "progress_bar": progress})
    given = {  # what the arguments set (each checked above by its own rule), by config key
        "alignment": alignment, "seed": seed, "layer": layer, "site": site, "position": position,
        "n_units": n_units, "alignment.variables": variables, "alignment.causal_model": causal_model,
        "hardware.progress_bar": progress, **{f"alignment.{k}": v for k, v in settings.items()},
    }  # fmt: skip
    _check_run_overrides(cfg, overrides, call, names, given)
    return run_models, a, run, hardware, source


RUN_READS = (
    "alignment",
    "partner.layer",
    "partner.site",
    "partner.causal_model",
    "partner.variables",
    "hardware",
)
"""What :func:`align` and :func:`scan` read from ``overrides`` (``alignment`` and ``hardware``: the group's
choice and its keys); the rest of ``run_alignment``'s config is for the command line, which finds the
models, their task and training, the partner and the loggers itself."""


def _check_run_overrides(
    cfg: DictConfig, overrides: Sequence[str], call: str, names: Mapping[str, str], given: Mapping[str, Any]
) -> None:
    """Every override of :func:`align` or :func:`scan` counts, or the call is refused before any work
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


@as_found
def language_model(
    model: str | Path | torch.nn.Module,
    tokenizer: Any = None,
    *,
    dtype: str | None = None,
    name: str | None = None,
) -> SequenceModel:
    """A causal language model, frozen, with its tokenizer: from a local folder (``save_pretrained``;
    ``model=lm model.path=<path>`` of the command line), or a HuggingFace causal LM and its tokenizer
    already in memory (``language_model(hf_model, tokenizer)``).

    ``dtype`` (``float32``, ``bfloat16`` or ``float16``): what a folder's weights are loaded in (None:
    ``float32``). A model in memory is used as it is, never cast or copied: ``dtype`` may only name its
    own dtype, another is refused (cast it yourself first: ``hf_model.to(torch.bfloat16)``). A model in
    memory is frozen only while a call runs it: between calls it has its own ``requires_grad`` and
    ``training`` flags."""
    from alignsearch.models.lm import DTYPES

    if dtype is not None and (not isinstance(dtype, str) or dtype not in DTYPES):
        raise ConfigError("dtype", dtype, f"one of {', '.join(DTYPES)}, or None", (str,)).as_argument("dtype")
    if isinstance(model, str | Path):
        with arguments({"model.path": "model", "model.dtype": "dtype"}):
            return inputs.language_model_folder(model, dtype or "float32")
    if dtype is not None and isinstance(model, torch.nn.Module):
        own = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
        if DTYPES[dtype] != own:
            raise ConfigError(
                "dtype",
                dtype,
                f"the model's own dtype, {str(own).removeprefix('torch.')} (a model in memory is not cast: "
                f"pass model.to(torch.{dtype}), or leave dtype out)",
            ).as_argument("dtype")
    return inputs.language_model_object(model, tokenizer, name=name)


def sites(model: Any) -> dict[str, int]:
    """A model's named sites and their widths, in order: ``{site: width}``, what ``site=`` (or ``layer=``)
    takes. For a language model (:func:`language_model`, or the folder it would load: only its
    ``config.json`` is read) ``embedding``, then for each block ``layer.<i>`` (the residual stream after
    it), ``layer.<i>.attn`` and ``layer.<i>.mlp`` (the outputs of its attention and MLP) and
    ``layer.<i>.head.<j>`` (head ``j``'s output before the attention output projection, head-size wide);
    for a task model (a zoo entry or a SequenceModel) its own sites (``embedding``, ``layer.0``, ...); a
    HuggingFace causal LM in memory has a language model's sites; another ``torch.nn.Module`` has none
    (its sites are module paths). The command line lists the same:
    ``python -m alignsearch.sites <folder>``::

        sites(api.language_model("checkpoints/gpt2"))["layer.5.head.3"]  # 64
        sites(api.model("gru"))                                          # {'embedding': 128, 'layer.0': 128}
    """
    from alignsearch.models.hf import folder_sites

    if isinstance(model, str | Path):
        with arguments({"model.path": "model"}):
            return folder_sites(model)
    if isinstance(model, zoo.ZooEntry):
        model = model.model
    if isinstance(model, SequenceModel):
        return dict(model.sites)
    transformers = sys.modules.get("transformers")  # a HuggingFace model in memory: transformers is loaded
    if transformers is not None and isinstance(model, transformers.PreTrainedModel):
        from alignsearch.models.hf import lm_sites

        with arguments({"model.path": "model"}):
            return lm_sites(model, type(model).__name__)
    if isinstance(model, torch.nn.Module):
        return {}
    raise ConfigError(
        "model",
        model,
        "a language model (api.language_model) or its folder, a zoo entry (api.model), a SequenceModel or a "
        "torch.nn.Module",
    ).as_argument("model")


@as_found
def text_pairs(rows: Iterable[Mapping[str, Any]], tokenizer, **options: Any) -> PairsData:
    """Counterfactual pairs of text from Python rows (dicts with ``base``, ``source``, ``target`` and
    optionally ``position``/``marker``/``split`` and a ``counterfactual`` prompt, the natural target of
    the counterfactual-latent loss; a list, a generator or a ``datasets.Dataset``),
    tokenised with ``tokenizer``: what ``data=pairs`` reads from a file (see
    :func:`alignsearch.text.pairs.text_pairs` for ``max_length``, ``seed`` and ``fractions``)."""
    from alignsearch.text.pairs import text_pairs as build

    known = _keyword_options(build)
    for key, value in options.items():
        if key not in known:
            raise unknown_key(key, value, known).as_argument(key)
    return build(rows, tokenizer, **options)


CORPUS_ARGUMENTS = {"data.horizon": "horizon", "data.max_length": "max_length", "texts": "texts"}


@as_found
def corpus(texts: Iterable[str], tokenizer: Any, **options: Any) -> CorpusSource:
    """A corpus from Python, for behavioural MAS between two language models: what ``data=corpus`` reads
    from a file, from ``texts`` (a list of strings, or any iterable of them; each text as it is, as a
    ``.jsonl``'s ``text`` fields are read), tokenised with ``tokenizer`` (or a list of tokenizers, one
    per model, which must tokenise every text alike). ``options`` are ``conf/data/corpus.yaml``'s:
    ``variable`` (the aligned subspace's name; ``shared``), ``max_length`` (tokens per text; 64),
    ``horizon`` (tokens predicted after each cut; 4), ``seed`` (the split of the texts and the cuts; 0)
    and ``fractions`` (train, val, test; ``[0.8, 0.1, 0.1]``). A run identifies a corpus by its token
    ids, so two corpora of as many texts are two corpora, each with its own results in an ``out_dir``::

        texts = ["the cat sat on the mat", ...]
        result = align([lm_a, lm_b], alignment="mas", data=corpus(texts, lm_a.tokenizer), layer=1, n_units=16)
    """
    from alignsearch.search.text_data import corpus_of_texts

    known = [k for k in _keyword_options(corpus_of_texts) if k not in ("cache_dir", "file")]
    for key, value in options.items():
        if key not in known:
            raise unknown_key(key, value, known).as_argument(key)
    if "seed" in options:
        with arguments({"seed": "seed"}):
            seed_value("seed", options["seed"])
    tokenizers = list(tokenizer) if isinstance(tokenizer, list | tuple) else [tokenizer]
    if not tokenizers or not all(callable(t) for t in tokenizers):
        raise ConfigError(
            "tokenizer", type(tokenizer).__name__, "a tokenizer (lm.tokenizer), or a list of them"
        ).as_argument("tokenizer")
    with arguments(CORPUS_ARGUMENTS):
        return inputs.corpus(texts, tokenizers, **options)


@as_found
def load_alignment(path: str | Path) -> SavedAlignment:
    """A trained alignment saved by :meth:`AlignmentResult.save` or a run (``alignment.pt``); a file that is
    not one is a one-line ConfigError (it is read as data: nothing in it runs)."""
    if isinstance(path, bool) or not isinstance(path, str | Path) or not str(path):
        raise ConfigError(
            "path",
            path,
            "the path of an alignment file (alignment.pt of a run, or result.save's file)",
            (str, Path),
        ).as_argument("path")
    return load_saved(path)


@as_found
@torch.no_grad()
def iia(
    alignment: SavedAlignment | AlignmentResult,
    models: Any,
    pairs: CounterfactualPairs | TextPairs | PairsData,
    *,
    source: int = 0,
    target: int = 0,
    variable: str | None = None,
    task: str | None = None,
) -> dict[str, float]:
    """IIA and token IIA of a trained alignment on new pairs, for one direction (``source`` -> ``target``).

    ``models`` (one, or a list) take the places of the models the alignment was trained on (the same
    ones, or others of the same widths at the same sites: a transfer), as :func:`align` takes them.
    ``pairs``: counterfactual pairs of the target's task (:func:`pairs`), or text pairs for language
    models (one split, ``data.splits["val"]``, or all of :func:`text_pairs`' ``val`` split). Counterfactual
    pairs must be of the causal model the alignment was trained on (``pairs.causal_model``), swap its
    variable (``variable``, named as the alignment's records name it; None: the variable the pairs swap)
    and come from the task the models read with the same settings (``task.max_count``, ...). A one-line
    ConfigError says what does not fit, before anything runs."""
    from alignsearch.search.module import AlignmentModule
    from alignsearch.search.pairs import Track, pair_tensors

    saved = alignment.load() if isinstance(alignment, AlignmentResult) else alignment
    if not isinstance(saved, SavedAlignment):
        raise ConfigError(
            "alignment", type(saved).__name__, "an alignment (api.align's result, or api.load_alignment)"
        ).as_argument("alignment")
    run_models = inputs.run_models(models, task)
    for key, index in (("source", source), ("target", target)):
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(run_models):
            raise ConfigError(key, index, f"a model index below {len(run_models)}", (int,)).as_argument(key)
    if isinstance(pairs, PairsData):
        if "val" not in pairs.splits:
            raise ConfigError("pairs", "text pairs without a val split", "pairs with a val split")
        pairs = pairs.splits["val"]
    text = isinstance(pairs, TextPairs)
    if not text and not isinstance(pairs, CounterfactualPairs):
        raise ConfigError(
            "pairs", type(pairs).__name__, "counterfactual pairs (api.pairs) or text pairs (api.text_pairs)"
        ).as_argument("pairs")
    _check_pairs(pairs, run_models[target], run_models[source])
    if text:
        variable = variable or saved.variables[0]
    else:  # the causal model, variable and task settings the pairs were made for: the alignment's and models'
        models_of = (run_models[target], run_models[source])
        variable = check_pairs_fit(saved.config, saved.variables, pairs, *models_of, target, source, variable)
    _check_fit(saved, run_models, source, target, variable)
    modules = [m.model for m in run_models]
    track = Track(source, target, variable)
    module = AlignmentModule(
        modules,
        saved.sites,
        saved.interchange,
        [track],
        eval_splits=(),
        stepwise=getattr(pairs, "stepwise", False),
    )
    if isinstance(pairs, TextPairs):
        tensors = TextPairSource.tensors(pairs, modules[source], saved.sites[source])
    else:
        tensors = pair_tensors(pairs, modules[source], saved.sites[source])
    return Scores(module.evaluate({track.name: tensors})[track.name])


def _check_pairs(pairs: CounterfactualPairs | TextPairs, target: RunModel, source: RunModel) -> None:
    """A ConfigError unless the pairs are of the target's task (or, for text, its tokenizer's ids), and
    there is at least one."""
    from alignsearch.models.vocabulary import check_ids_in_vocab

    if len(pairs) == 0:
        raise ConfigError("pairs", 0, "at least one pair").as_argument("pairs")
    if isinstance(pairs, TextPairs):
        if target.task is not None:
            raise ConfigError(
                "pairs", "text pairs", f"pairs of task {target.task.name} for {target.name} (api.pairs)"
            ).as_argument("pairs")
        for model in (target, source):
            check_ids_in_vocab(pairs.ids, getattr(model.model, "vocab_size", None), "pairs")
        return
    if target.task is None:
        raise ConfigError(
            "pairs", f"pairs of task {getattr(pairs.task, 'name', '?')}", f"text pairs for {target.name}"
        ).as_argument("pairs")
    task = pairs.task
    if task is not None and (
        task.name != target.task.name or tuple(task.vocab.tokens) != tuple(target.task.vocab.tokens)
    ):
        raise ConfigError(
            "pairs",
            f"pairs of task {task.name} ({' '.join(task.vocab.tokens)})",
            f"pairs of task {target.task.name} ({' '.join(target.task.vocab.tokens)}), the task of {target.name}",
        ).as_argument("pairs")
    check_ids_in_vocab(pairs.ids, target.task.vocab.size, "pairs")
    if source.task is not None:
        check_ids_in_vocab(pairs.source.ids, source.task.vocab.size, "pairs")


def _check_fit(
    saved: SavedAlignment, models: Sequence[RunModel], source: int, target: int, variable: str
) -> None:
    """A ConfigError unless ``models`` can stand where the alignment's models stood, and the variable is
    the alignment's."""
    from alignsearch.models import hooks

    trained_on = ", ".join(saved.models)
    if len(models) != len(saved.models):
        raise ConfigError("models", len(models), f"{len(saved.models)} model(s), as trained ({trained_on})")
    for i, (model, site, width) in enumerate(zip(models, saved.sites, saved.widths, strict=True)):
        has = hooks.site_width(model.model, site)
        if has != width:
            raise ConfigError(
                f"models[{i}]",
                model.name,
                f"a model of width {width} at {site}, as {saved.models[i]}: it has {has}",
            )
    if variable not in saved.variables:
        raise ConfigError(
            "variable", variable, f"one of the alignment's variables: {', '.join(saved.variables)}"
        )
