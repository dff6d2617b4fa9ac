"""The Python API: what the command line does, as functions a notebook can call (no Hydra command line).

    from alignsearch import api

    gru = api.model("gru", seed=0)                              # from the zoo; trained first if missing
    result = api.align(gru, variables=["count"], n_units=16)    # DAS on layer.0
    print(result.table())                                       # IIA per direction and variable
    result.save("das_count.pt")
    saved = api.load_alignment("das_count.pt")
    pairs = api.pairs(gru.task, "updown", "count", n=500, seed=7)
    api.iia(saved, [gru], pairs)                                # {"iia": ..., "token_iia": ...}

Settings are the command line's, composed from ``conf/`` with overrides, so a notebook and a sweep that
say the same thing run the same thing: ``api.align(gru, alignment="revres", max_steps=300)`` is
``python run_alignment.py alignment=revres alignment.max_steps=300``.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from alignsearch import zoo
from alignsearch.cli.checks import model_request
from alignsearch.cli.plan import flat_config, named_settings, plan_alignment
from alignsearch.cli.text_run import model_settings, plan_text, untrained_copies
from alignsearch.components import CONF_DIR
from alignsearch.models import SequenceModel
from alignsearch.search.controls import run_controls, with_controls
from alignsearch.search.fit import fit_alignment
from alignsearch.search.module import AlignmentModule
from alignsearch.search.pairs import Track, pair_tensors
from alignsearch.search.saved import SavedAlignment, load_alignment, save_alignment
from alignsearch.search.spec import AlignmentPlan
from alignsearch.search.text_data import CorpusSource, TextPairSource
from alignsearch.seeding import generator
from alignsearch.settings import AlignmentSettings, HardwareSettings, unknown_key
from alignsearch.tasks import causal_model_for
from alignsearch.tasks.counterfactual import CounterfactualPairs, make_pairs
from alignsearch.text.pairs import PairsData

__all__ = [
    "AlignmentResult",
    "align",
    "config",
    "iia",
    "language_model",
    "load_alignment",
    "model",
    "own_model",
    "pairs",
    "text_pairs",
]


def config(name: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The composed config of an entry point (``train_task_model`` or ``run_alignment``) with overrides."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(name, overrides=list(overrides))


def _common(zoo_dir: str | Path | None, out_dir: str | Path) -> list[str]:
    extra = ["hardware.progress_bar=false", f"paths.output_dir={out_dir}"]
    return extra + ([f"paths.zoo_dir={zoo_dir}"] if zoo_dir else [])


def model(
    model: str = "gru",
    task: str = "multiobject",
    seed: int = 0,
    *,
    zoo_dir: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> zoo.ZooEntry:
    """A trained task model from the zoo (trained first, under the zoo's lock, if it is missing).

    ``overrides`` are command-line style: ``["model.d_model=64", "training.max_steps=2000"]``.
    """
    cfg = config(
        "train_task_model",
        [f"model={model}", f"task={task}", f"seed={seed}", *_common(zoo_dir, "."), *overrides],
    )
    return zoo.get_or_train(model_request(cfg), verbose=False)


OWN = "own"
"""``entry.info["origin"]`` of a model brought with :func:`own_model` (not trained by the zoo)."""
PROBE_SEQUENCES = 500
"""Sequences :func:`own_model` reads to measure a brought model's trial accuracy on its task."""


@torch.no_grad()
def own_model(
    model: SequenceModel,
    task: str = "multiobject",
    *,
    name: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> zoo.ZooEntry:
    """A model trained elsewhere, as :func:`align`, :func:`iia` and :func:`pairs` take a zoo model.

    ``model`` is a :class:`~alignsearch.models.SequenceModel` (``encode`` and ``readout``; its sites, or
    module paths) that reads ``task``'s token ids (``entry.task.vocab``; ``overrides`` change the task's
    settings, command-line style: ``["task.max_count=9"]``). Results name it
    ``<task>/<name>/sha256-<digest>``, by the digest of its weights, so another set of weights is another
    model. Like a zoo model it is frozen (eval mode, no gradients). Its trial accuracy on the task is
    measured (``entry.metrics["val_trial_acc"]``): a model that reads the ids differently scores near 0
    there::

        entry = own_model(my_gru, "multiobject", name="my_gru")
        print(align(entry, variables=["count"], n_units=16).table())
    """
    from alignsearch.components import build_task
    from alignsearch.engine.metrics import task_accuracy
    from alignsearch.errors import ConfigError

    if not isinstance(model, SequenceModel):
        raise ConfigError(
            "model", type(model).__name__, "a SequenceModel (encode(ids, intervention) and readout(hidden))"
        )
    task_obj = build_task(config("train_task_model", [f"task={task}", *overrides]).task)
    model.eval().requires_grad_(False)
    probe = task_obj.sample(2, generator(0, "own-model-probe"))
    logits = model(probe.ids)
    if logits.shape[-1] != task_obj.vocab.size:
        raise ConfigError(
            "model",
            type(model).__name__,
            f"logits over the {task_obj.vocab.size} tokens of task {task_obj.name} "
            f"({' '.join(task_obj.vocab.tokens)}); it gives {logits.shape[-1]}",
        )
    digest = weights_digest(model)
    name = name or type(model).__name__.lower()
    accuracy = task_accuracy(model, task_obj, PROBE_SEQUENCES, generator(0, "own-model-accuracy"))
    info = {
        "task": task_obj.name,
        "model": name,
        "seed": None,
        "vocab": list(task_obj.vocab.tokens),
        "sites": dict(model.sites),
        "origin": OWN,
    }
    path = Path(task_obj.name) / name / f"sha256-{digest[:12]}"
    return zoo.ZooEntry(path, task_obj, model, {"val_trial_acc": accuracy}, info, digest)


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 over a model's state dict (names, dtypes, shapes and values): what identifies its weights."""
    import hashlib

    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        tensor = value.detach().cpu().contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _initial_models(entries: list[zoo.ZooEntry], seed: int) -> list[SequenceModel]:
    """The ``untrained`` control's models: a zoo model as the zoo initialised it before training; a brought
    model re-initialised (:func:`reinitialised`)."""
    return [
        reinitialised(e.model, seed + i) if e.info.get("origin") == OWN else zoo.initial_model(e)
        for i, e in enumerate(entries)
    ]


def reinitialised(model: SequenceModel, seed: int) -> SequenceModel:
    """A copy of ``model`` whose modules' ``reset_parameters()`` ran under ``seed``. A ConfigError if a
    weight is left as it was (a parameter of a module without ``reset_parameters``): the control would
    keep trained weights."""
    import copy

    from alignsearch.errors import ConfigError

    twin = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in twin.modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
    before = dict(model.named_parameters())
    kept = [n for n, p in twin.named_parameters() if p.numel() > 1 and torch.equal(p, before[n])]
    if kept:
        raise ConfigError(
            "controls",
            "untrained",
            f"a model whose weights its modules' reset_parameters() re-initialise ({', '.join(kept[:3])} "
            "are not): give those modules a reset_parameters(), or leave this control out",
        )
    return twin.eval().requires_grad_(False)


def pairs(
    task, causal_model: str = "updown", variable: str = "count", n: int = 1000, seed: int = 0, **options: Any
) -> CounterfactualPairs:
    """``n`` counterfactual pairs of ``task`` for a variable of a causal model (see
    :func:`alignsearch.tasks.counterfactual.make_pairs` for ``split``, ``stepwise`` and the rest)."""
    return make_pairs(
        task, causal_model_for(task, causal_model), variable, n, generator(seed, "api-pairs"), **options
    )


@dataclass
class AlignmentResult:
    """A finished alignment: its records (IIA per direction and variable), history and saved weights."""

    plan: AlignmentPlan
    config: dict[str, Any]
    records: list[dict[str, Any]]
    history: list[dict[str, Any]]
    state: dict[str, Any] = field(repr=False)
    steps: int = 0

    def iia(self, direction: str = "0>0", variable: str | None = None) -> float:
        """Validation IIA of one direction (and variable; the first by default)."""
        variable = variable or self.plan.variables[0]
        return next(
            r["iia"] for r in self.records if r["direction"] == direction and r["variable"] == variable
        )

    def table(self) -> str:
        lines = [f"{'direction':9s} {'variable':10s} {'IIA val':>8s} {'test':>8s}"]
        for r in self.records:
            lines.append(f"{r['direction']:9s} {r['variable']:10s} {r['iia']:8.3f} {r['iia_test']:8.3f}")
        return "\n".join(lines)

    def save(self, path: str | Path) -> Path:
        save_alignment(Path(path), self.plan, self.state, self.config)
        return Path(path)

    def load(self) -> SavedAlignment:
        """The trained alignment as :func:`load_alignment` gives it (without a file)."""
        with tempfile.TemporaryDirectory() as tmp:
            return load_alignment(self.save(Path(tmp) / "alignment.pt"))


@contextmanager
def _work_dir(out_dir: str | Path | None) -> Iterator[Path]:
    """``out_dir`` (kept), or a temporary folder removed on leaving (also on an error)."""
    if out_dir:
        yield Path(out_dir)
        return
    with tempfile.TemporaryDirectory(prefix="alignsearch-") as tmp:
        yield Path(tmp)


def align(
    models: zoo.ZooEntry | list[zoo.ZooEntry],
    *,
    alignment: str = "das",
    layer: int | str = 0,
    site: str | None = None,
    variables: list[str] | tuple[str, ...] = ("count",),
    n_units: int | list[int] = 16,
    causal_model: str = "updown",
    seed: int = 0,
    out_dir: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    data: PairsData | TextPairSource | CorpusSource | None = None,
    **settings: Any,
) -> AlignmentResult:
    """Align a site of one model (DAS) or two (MAS and its family) and evaluate it.

    Language models (:func:`language_model`) align on ``data`` instead of a task: counterfactual pairs of
    text (:func:`text_pairs`; the variable is named ``variables[0]``) or a corpus source.

    ``settings`` are alignment keys (``max_steps=300``, ``lr=0.01``, ``stepwise=True``); ``overrides``
    anything else, command-line style (``["partner.variables=[demo_count]"]``). With two models the
    second is the partner: its own task, causal model and variables come from ``overrides``.
    Training checkpoints go to ``out_dir``, where they stay; without one they go to a temporary folder
    that is removed when the call ends (also when it fails).
    """
    entries = models if isinstance(models, list) else [models]
    if data is not None:
        return _align_text(
            entries, data, alignment=alignment, layer=layer, site=site, variable=variables[0],
            n_units=n_units, seed=seed, out_dir=out_dir, overrides=overrides, **settings,
        )  # fmt: skip
    with _work_dir(out_dir) as work:
        cfg = config("run_alignment", [f"alignment={alignment}", *_common(None, work), *overrides])
        _merge_settings(cfg, settings)
        cfg.alignment.variables, cfg.alignment.causal_model = list(variables), causal_model
        cfg.layer, cfg.site, cfg.seed = layer, site, seed
        cfg.n_units = list(n_units) if isinstance(n_units, list | tuple) else n_units
        cfgs = _member_configs(cfg, entries)
        plan = plan_alignment(cfgs, entries)
        hardware = HardwareSettings.parse(cfg.hardware)
        models = [e.model for e in entries]
        out = fit_alignment(plan, models, work, seed=seed, hardware=hardware)
        records = _controlled(
            plan, models, out.records, work, seed, hardware, lambda: _initial_models(entries, seed)
        )
    first = entries[0].info
    flat = flat_config(cfg, plan, {"alignment": alignment, "task": first["task"], "model": first["model"]})
    flat |= named_settings(
        [
            (e.task, e.model, None if e.info.get("origin") == OWN else zoo.recorded_training(e))
            for e in entries
        ]
    )
    if len(entries) > 1:
        partner = entries[1].info
        flat |= {
            "partner_model": partner["model"],
            "partner_task": partner["task"],
            "partner_seed": partner["seed"],
        }
    return AlignmentResult(plan, flat, records, out.history, out.state, out.steps)


def _align_text(
    models: list[SequenceModel],
    data: PairsData | TextPairSource | CorpusSource,
    *,
    alignment: str,
    layer: int | str,
    site: str | None,
    variable: str,
    n_units: int | list[int],
    seed: int,
    out_dir: str | Path | None,
    overrides: list[str] | tuple[str, ...],
    **settings: Any,
) -> AlignmentResult:
    """:func:`align` for language models on text."""
    source = TextPairSource(data, variable) if isinstance(data, PairsData) else data
    with _work_dir(out_dir) as work:
        cfg = config("run_alignment", [f"alignment={alignment}", *_common(None, work), *overrides])
        _merge_settings(cfg, settings)
        cfg.layer, cfg.site, cfg.seed = layer, site, seed
        cfg.n_units = list(n_units) if isinstance(n_units, list | tuple) else n_units
        cfgs = _member_configs(cfg, models)
        a = AlignmentSettings.parse(cfg.alignment)
        if isinstance(source, CorpusSource):
            a = dataclasses.replace(a, stepwise=True)
        plan = plan_text(cfg, cfgs, models, source, a)
        hardware = HardwareSettings.parse(cfg.hardware)
        out = fit_alignment(plan, models, work, seed=seed, hardware=hardware)
        records = _controlled(
            plan, models, out.records, work, seed, hardware, lambda: untrained_copies(models, seed)
        )
    flat = flat_config(cfg, plan, {"alignment": alignment, "task": variable, "model": models[0].name})
    flat |= model_settings(models)
    return AlignmentResult(plan, flat, records, out.history, out.state, out.steps)


def _controlled(plan, models, records, work: Path, seed: int, hardware, untrained) -> list[dict[str, Any]]:
    """``records`` with the controls of ``alignment.controls`` (``controls=[...]``) beside each IIA."""
    if not plan.settings.controls:
        return records
    scores = run_controls(
        plan, models, plan.settings.controls, work, seed=seed, hardware=hardware, untrained=untrained
    )
    return with_controls(records, scores)


def _merge_settings(cfg: DictConfig, settings: dict[str, Any]) -> None:
    """Alignment keys given as keyword arguments, typed values as they are (checked with the plan)."""
    for key in settings:
        if key not in cfg.alignment:
            raise unknown_key(f"alignment.{key}", settings[key], [f"alignment.{k}" for k in cfg.alignment])
    cfg.alignment.merge_with(settings)


def language_model(path: str | Path, dtype: str = "float32") -> SequenceModel:
    """A causal language model from a local folder (``save_pretrained``), frozen, with its tokenizer:
    ``model=lm model.path=<path>`` of the command line."""
    from alignsearch.models.lm import TextLM

    return TextLM(str(path), dtype)


def text_pairs(rows: Iterable[Mapping[str, Any]], tokenizer, **options: Any) -> PairsData:
    """Counterfactual pairs of text from Python rows (dicts with ``base``, ``source``, ``target`` and
    optionally ``position``/``marker``/``split``; a list, a generator or a ``datasets.Dataset``),
    tokenised with ``tokenizer``: what ``data=pairs`` reads from a file (see
    :func:`alignsearch.text.pairs.text_pairs` for ``max_length``, ``seed`` and ``fractions``)."""
    from alignsearch.text.pairs import text_pairs as build

    return build(rows, tokenizer, **options)


def _member_configs(cfg: DictConfig, entries: list) -> list[DictConfig]:
    from alignsearch.cli.plan import member_configs

    if int(cfg.alignment.get("models", 1)) != len(entries):
        from alignsearch.errors import ConfigError

        raise ConfigError(
            "models",
            len(entries),
            f"{cfg.alignment.get('models', 1)} model(s) for alignment={cfg.alignment.name}",
        )
    return member_configs(cfg)


@torch.no_grad()
def iia(
    alignment: SavedAlignment | AlignmentResult,
    models: list[zoo.ZooEntry],
    pairs: CounterfactualPairs,
    *,
    source: int = 0,
    target: int = 0,
    variable: str | None = None,
) -> dict[str, float]:
    """IIA and token IIA of a trained alignment on new pairs, for one direction (``source`` -> ``target``).

    ``models`` take the places of the models the alignment was trained on (the same ones, or others of
    the same widths at the same sites: a transfer); a ConfigError says what does not fit."""
    saved = alignment.load() if isinstance(alignment, AlignmentResult) else alignment
    variable = variable or pairs.variable
    _check_fit(saved, models, source, target, variable)
    track = Track(source, target, variable)
    modules = [e.model for e in models]
    module = AlignmentModule(
        modules, saved.sites, saved.interchange, [track], eval_splits=(), stepwise=pairs.stepwise
    )
    tensors = pair_tensors(pairs, modules[source], saved.sites[source])
    return module.evaluate({track.name: tensors})[track.name]


def _check_fit(saved: SavedAlignment, models: list, source: int, target: int, variable: str) -> None:
    """A ConfigError unless ``models`` can stand where the alignment's models stood, and the direction and
    variable are the alignment's."""
    from alignsearch.errors import ConfigError
    from alignsearch.models import hooks

    trained_on = ", ".join(saved.models)
    if len(models) != len(saved.models):
        raise ConfigError("models", len(models), f"{len(saved.models)} model(s), as trained ({trained_on})")
    for key, index in (("source", source), ("target", target)):
        if not 0 <= index < len(models):
            raise ConfigError(key, index, f"a model index below {len(models)}")
    for i, (entry, site, width) in enumerate(zip(models, saved.sites, saved.widths, strict=True)):
        has = hooks.site_width(entry.model, site)
        if has != width:
            raise ConfigError(
                f"models[{i}]",
                zoo.short_name(entry.path),
                f"a model of width {width} at {site}, as {saved.models[i]}: it has {has}",
            )
    if variable not in saved.variables:
        raise ConfigError(
            "variable", variable, f"one of the alignment's variables: {', '.join(saved.variables)}"
        )
