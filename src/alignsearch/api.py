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
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from alignsearch import inputs, zoo
from alignsearch.arguments import (
    argument_names,
    arguments,
    checked_overrides,
    common_overrides,
    composed,
    keyword_options,
    pair_options,
    run_inputs,
    unwritable,
    work_dir,
    writable_file,
)
from alignsearch.call_checks import Owned, check_overrides
from alignsearch.components import build_task
from alignsearch.engine.world import as_found
from alignsearch.errors import ConfigError
from alignsearch.models import SequenceModel
from alignsearch.search.evaluate import Scores, evaluate_saved
from alignsearch.search.records import AlignmentRecord, records_table
from alignsearch.search.run import RunResult, run_alignment
from alignsearch.search.saved import SavedAlignment, save_alignment
from alignsearch.search.saved import load_alignment as load_saved
from alignsearch.search.scan import ScanResult, run_scan
from alignsearch.search.text_data import CorpusSource, TextPairSource
from alignsearch.seeding import generator
from alignsearch.settings import ScanSettings, positive_int, seed_value, unknown_key
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


def config(name: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The composed config of an entry point (``train_task_model`` or ``run_alignment``) with overrides,
    checked as the command line checks them (``model=gruu``: a one-line ConfigError listing the models)."""
    return composed(name, overrides)


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
        [f"model={model}", f"task={task}", f"seed={seed}", *common_overrides(zoo_dir, "."), *overrides],
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
    options = pair_options(options)
    with arguments(
        {"causal_model": "causal_model", "variable": "variable", "split": "split", "position": "position"}
    ):
        return make_pairs(
            task, causal_model_for(task, causal_model), variable, n, generator(seed, "api-pairs"), **options
        )


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
        file = writable_file(path, "path")
        try:
            save_alignment(file, self.plan, self.state, self.config)
        except OSError as e:
            raise unwritable("path", path, e) from None
        return file

    @as_found
    def load(self) -> SavedAlignment:
        """The trained alignment as :func:`load_alignment` gives it (without a file)."""
        with tempfile.TemporaryDirectory() as tmp:
            return load_saved(self.save(Path(tmp) / "alignment.pt"))


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
    min_task_accuracy: float | None = None,
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
    ``min_task_accuracy`` (a number in [0, 1]; None: the command line's, 0.95): a model of the zoo
    (:func:`model`) whose training reached a lower validation trial accuracy is refused before any work,
    the error saying what it reached (0 aligns any); models brought from Python are not held to it.
    Training checkpoints and ``results.json`` go to ``out_dir``, where they stay (and a finished run is
    found again); without one they go to a temporary folder removed when the call ends.
    """
    names = argument_names(settings)
    overrides = checked_overrides(overrides)
    with work_dir(out_dir) as work:
        run_models, a, run, hardware, source = run_inputs(
            models, work, names, task=task, alignment=alignment, layer=layer, site=site, position=position,
            variables=variables, n_units=n_units, causal_model=causal_model, seed=seed,
            overrides=overrides, data=data, progress=progress, settings=settings,
            min_task_accuracy=min_task_accuracy,
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
    controls_top: int = 3,
    top_controls: list[str] | tuple[str, ...] = ("shuffled", "untrained"),
    show: str | None = None,
    alignment: str = "das",
    variables: list[str] | tuple[str, ...] = ("count",),
    n_units: int | list[int] = 16,
    causal_model: str = "updown",
    seed: int = 0,
    out_dir: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    progress: bool = True,
    min_task_accuracy: float | None = None,
    **settings: Any,
) -> ScanResult:
    """Where does the variable live? A short alignment (``steps`` steps) at every site x position, the
    command line's ``python -m alignsearch.scan`` (:mod:`alignsearch.search.scan`, the same code).

    ``sites``: names or module paths (None: ``embedding`` and every ``layer.<i>``); ``positions``: where
    every prompt of a pair is intervened on, ``"last"``, ``-2``, ``"marker:<text>[:<offset>]"`` or
    ``"any"`` (each pair's own; None: ``["last", -2, -3]`` on text, ``["any"]`` for task models);
    ``controls`` run beside each cell; ``top_controls`` (trained controls) at the ``controls_top`` best
    cells by IIA, which then rank by selectivity, IIA minus the best control (0: none, ranked by IIA);
    ``show``: what ``scan.png`` shows, ``"iia"`` or ``"selectivity"`` (None: selectivity where trained
    controls ran); ``then_align``: then the full alignment (``settings``, e.g. ``max_steps=1000``) at the
    best cell (``result.aligned``). The rest as :func:`align` (overrides included: where a scan aligns is
    ``sites`` and ``positions``, never ``layer``/``site``/``position`` overrides). ``progress`` prints a
    line per cell and per trained control and the ``top`` best cells. The result has ``.cells``,
    ``.best()`` (by selectivity where trained controls ran), ``.best_by_iia()``, ``.table()`` and
    ``.csv()``; with ``out_dir`` the cells, ``scan.csv``, ``scan.png`` and ``scan.json`` stay there (and a
    finished cell and trained control are found again)::

        result = api.scan(lm, data=pairs, sites=["layer.0", "layer.1"], positions=["last", -2], steps=50)
        print(result.table(3)); result.best().site
    """
    names = argument_names(settings) | {
        f"scan.{k}": k
        for k in (
            "sites", "positions", "steps", "controls", "then_align", "top", "controls_top", "top_controls",
            "show",
        )
    }  # fmt: skip
    overrides = checked_overrides(overrides)
    with work_dir(out_dir) as work:
        run_models, a, run, hardware, source = run_inputs(
            models, work, names, task=task, alignment=alignment, layer=0, site=None, position=None,
            variables=variables, n_units=n_units, causal_model=causal_model, seed=seed,
            overrides=overrides, data=data, progress=progress, settings=settings, call="api.scan",
            min_task_accuracy=min_task_accuracy,
        )  # fmt: skip
        with arguments(names):
            settings_of_scan = ScanSettings.parse(
                {"sites": sites, "positions": positions, "steps": steps, "controls": controls,
                 "then_align": then_align, "top": top, "controls_top": controls_top,
                 "top_controls": top_controls, "show": show}
            )  # fmt: skip
            from alignsearch.report.plots import scan_heatmap  # matplotlib only when a scan runs

            return run_scan(
                run_models, a, run, hardware, work, settings_of_scan, data=source, verbose=progress,
                heatmap=scan_heatmap,
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
    from alignsearch.models.hf_sites import folder_sites

    if isinstance(model, str | Path):
        with arguments({"model.path": "model"}):
            return folder_sites(model)
    if isinstance(model, zoo.ZooEntry):
        model = model.model
    if isinstance(model, SequenceModel):
        return dict(model.sites)
    transformers = sys.modules.get("transformers")  # a HuggingFace model in memory: transformers is loaded
    if transformers is not None and isinstance(model, transformers.PreTrainedModel):
        from alignsearch.models.hf_sites import lm_sites

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

    known = keyword_options(build)
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

    known = [k for k in keyword_options(corpus_of_texts) if k not in ("cache_dir", "file")]
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
) -> Scores:
    """IIA and token IIA of a trained alignment on new pairs, for one direction (``source`` -> ``target``):
    a dict of ``iia``, ``token_iia`` and ``iia_by_position`` (:class:`~alignsearch.search.evaluate.Scores`).

    ``models`` (one, or a list) take the places of the models the alignment was trained on (the same
    ones, or others of the same widths at the same sites: a transfer), as :func:`align` takes them.
    ``pairs``: counterfactual pairs of the target's task (:func:`pairs`), or text pairs for language
    models (one split, ``data.splits["val"]``, or all of :func:`text_pairs`' ``val`` split). Counterfactual
    pairs must be of the causal model the alignment was trained on (``pairs.causal_model``), swap its
    variable (``variable``, named as the alignment's records name it; None: the variable the pairs swap)
    and come from the task the models read with the same settings (``task.max_count``, ...). A one-line
    ConfigError says what does not fit, before anything runs."""
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
    return evaluate_saved(saved, run_models, pairs, source=source, target=target, variable=variable)
