"""Every kind of input an alignment run takes, as the run core takes it: a :class:`RunModel` per model and
a :class:`RunData` for pairs that do not come from a task, each identified by a content digest. The
command line (:mod:`alignsearch.cli`) and the Python API (:mod:`alignsearch.api`) both come here; neither
keeps its own copy.

Models (:func:`run_model` takes any of them, as :func:`alignsearch.api.align` is handed them):

* a zoo entry (:func:`zoo_model`): named by its zoo path, identified by its weights file's SHA-256;
* a zoo model asked for and not yet trained (:func:`planned_model`): what the checks before a run plan on;
* a :class:`~alignsearch.models.SequenceModel` or plain ``torch.nn.Module`` reading a task
  (:func:`own_entry`, then :func:`zoo_model`): named by the SHA-256 of its weights, identified also by
  what defines it (its whole state, its classes' code and attributes);
* a language model from its folder (:func:`language_model_folder`) or a HuggingFace causal LM and its
  tokenizer in memory (:func:`language_model_object`), then :func:`text_model`: identified by its
  folder's files, or by its weights and tokenizer.

Data:

* a pairs file or a corpus file (:func:`file_data`): identified by the file's SHA-256 (its reading
  settings join the run's settings);
* pairs from Python rows (:func:`python_pairs`): by :func:`pairs_digest`, their token ids and positions;
* a corpus from Python texts (:func:`corpus`, :func:`python_corpus`): by :func:`corpus_digest`, its token
  ids per split and what is predicted after each cut (``horizon``), never by its size alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from alignsearch import zoo
from alignsearch.errors import ConfigError
from alignsearch.models import SequenceModel
from alignsearch.search.spec import RunData, RunModel
from alignsearch.search.text_data import (
    CorpusSource,
    TextPairSource,
    corpus_of_texts,
    pairs_summary,
    untrained_copy,
)
from alignsearch.seeding import generator
from alignsearch.text.pairs import PairsData

if TYPE_CHECKING:
    from alignsearch.models.lm import TextLM

PYTHON_ROWS = "python rows"
"""What a run's flat config calls data given from Python (``data``; and a language model's ``task``)."""
PROBE_SEQUENCES = 500
"""Sequences :func:`own_entry` reads to measure a brought model's trial accuracy on its task."""
MODELS_ALLOWED = (
    "a zoo entry (api.model), a SequenceModel or torch.nn.Module with task=<a task name>, "
    "or a language model (api.language_model)"
)
DATA_ALLOWED = "text pairs (api.text_pairs) or a corpus (api.corpus), for language models"


# -- models --------------------------------------------------------------------------------------------------
def zoo_model(entry: zoo.ZooEntry, index: int = 0) -> RunModel:
    """``entry`` as an alignment run takes it (model ``index`` of the run): named by its zoo path and
    labelled by its task, model, seed and the settings that name it (training: the first model's only, a
    partner is trained alike); its untrained form is the model as the zoo initialised it, or, for a model
    brought from elsewhere, a re-initialised copy (:func:`alignsearch.zoo.reinitialised`), and such a
    model is identified by its definition too (:func:`with_definition`). A model the zoo trained carries
    its training's metrics, which ``min_task_accuracy`` is checked against."""
    own = entry.info.get("origin") == zoo.OWN
    labels = {"task": entry.info["task"], "model": entry.info["model"], "seed": entry.info["seed"]}
    if not own and hasattr(entry.task, "settings"):
        labels |= zoo.entry_settings(entry.task, entry.model, None if index else zoo.recorded_training(entry))

    def untrained(seed: int) -> SequenceModel:
        return zoo.reinitialised(entry.model, seed + index) if own else zoo.initial_model(entry)

    model = RunModel(
        entry.model, zoo.short_name(entry.path), entry.task, entry.weights_sha256, labels, untrained,
        training_metrics=None if own else entry.metrics,
    )  # fmt: skip
    return with_definition(model, entry) if own else model


def planned_model(request: zoo.ModelRequest) -> RunModel:
    """A zoo model asked for, as initialised (not trained, no weights digest): what a run is planned and
    checked on before any model is trained."""
    return RunModel(request.model, zoo.short_name(request.path), request.task, "")


def with_definition(run_model: RunModel, entry: zoo.ZooEntry) -> RunModel:
    """A model brought from Python (:func:`own_entry`) is identified in a run by what defines it as it is
    now, not only by its weights: its whole state, its classes' code and its attributes
    (:func:`~alignsearch.models.definition.definition_sha256`), so that a folder's results are never
    taken for a model redefined or changed since; a zoo model by its weights file, as its results say.
    Attributes the model's own forward changes (a call counter) are left out: one forward on two
    sequences of its task finds them."""
    from alignsearch.models.definition import attributes_changed_by, definition_sha256

    model = entry.model
    probe = entry.task.sample(2, generator(0, "own-model-probe")).ids
    with torch.no_grad():
        changing = attributes_changed_by(model, lambda: model(probe))
    run_model.definition_sha256 = definition_sha256(model, exclude=changing)
    return run_model


@torch.no_grad()
def own_entry(model: SequenceModel | torch.nn.Module, task: Any, name: str | None = None) -> zoo.ZooEntry:
    """A model trained elsewhere that reads ``task``'s token ids, as a zoo entry (``<task>/<name>/
    sha256-<digest>``, by the digest of its weights): refused before it runs if it reads fewer ids than
    the vocabulary has, or if it does not map two sequences of the task to logits over its vocabulary,
    batch first; its trial accuracy on the task is measured (``entry.metrics["val_trial_acc"]``). The
    caller freezes it while it runs (:func:`alignsearch.api.own_model`)."""
    from alignsearch.engine.metrics import task_accuracy
    from alignsearch.models.vocabulary import check_reads_vocab
    from alignsearch.models.wrapped import as_sequence_model, check_batch_first

    model = as_sequence_model(model, name=name)
    check_reads_vocab(model, task.vocab, key="model", what=f"task {task.name}")
    model.eval().requires_grad_(False)
    probe = task.sample(2, generator(0, "own-model-probe"))
    try:
        logits = model(probe.ids)
    except Exception as e:  # noqa: BLE001 - a model that cannot read the ids: say so in one line
        raise ConfigError(
            "model",
            model.name,
            f"a model that maps token ids (batch, length) to logits (batch, length, vocab): on two "
            f"sequences of task {task.name} it raised {type(e).__name__}: {str(e).splitlines()[0][:120]}",
        ) from None
    if logits.shape[-1] != task.vocab.size:
        raise ConfigError(
            "model",
            type(model).__name__,
            f"logits over the {task.vocab.size} tokens of task {task.name} "
            f"({' '.join(task.vocab.tokens)}); it gives {logits.shape[-1]}",
        )
    check_batch_first(model, probe.ids, logits)  # not (length, batch): that would mix the sequences
    digest = zoo.weights_digest(model)
    name = name or model.name
    accuracy = task_accuracy(model, task, PROBE_SEQUENCES, generator(0, "own-model-accuracy"))
    info = {
        "task": task.name,
        "model": name,
        "seed": None,
        "vocab": list(task.vocab.tokens),
        "sites": dict(model.sites),
        "origin": zoo.OWN,
    }
    path = Path(task.name) / name / f"sha256-{digest[:12]}"
    return zoo.ZooEntry(path, task, model, {"val_trial_acc": accuracy}, info, digest)


def task_named(task: Any, overrides: Sequence[str] = ()) -> Any:
    """The task ``task`` names (``multiobject``), with its settings as ``conf/task`` gives them and
    ``overrides`` change them (``task.max_count=9``): a one-line ConfigError for another name."""
    from alignsearch.components import build_task, compose_checked

    if not isinstance(task, str):
        raise ConfigError("task", task, "a task name (e.g. multiobject)", (str,)).as_argument("task")
    return build_task(compose_checked("train_task_model", [f"task={task}", *overrides]).task)


def language_model_folder(path: Any, dtype: str = "float32", index: int = 0) -> Any:
    """The language model saved in the folder ``path`` (``model=lm model.path=<folder>``), frozen, loaded
    in ``dtype``; a ConfigError keyed as the command line names model ``index``'s settings
    (``model.path``, ``partner.model_settings.path``)."""
    from alignsearch.models.lm import TextLM

    try:
        return TextLM(None if path is None else str(path), dtype)
    except ConfigError as e:
        e = e.under("model")
        if index == 0:
            raise e from None
        raise ConfigError(e.key.replace("model.", "partner.model_settings.", 1), e.value, e.allowed) from None


def language_model_object(model: torch.nn.Module, tokenizer: Any, name: str | None = None) -> Any:
    """A HuggingFace causal LM and its tokenizer already in memory, as a language model (wrapped, not
    copied: :meth:`alignsearch.models.lm.TextLM.from_model`)."""
    from alignsearch.models.lm import TextLM

    return TextLM.from_model(model, tokenizer, name=name)


def text_model(model: TextLM, index: int, task_label: str) -> RunModel:
    """A language model as a run takes it: named by itself, labelled by the data (``task_label``: the data
    file's name, or ``python rows``) and its settings (``model.path``: two folders of the same name are
    two models); untrained: fresh weights."""
    settings = model.settings() if hasattr(model, "settings") else {}
    labels = {"task": task_label, "model": model.name} | {f"model.{k}": v for k, v in settings.items()}
    return RunModel(
        model,
        model.name,
        None,
        model.weights_sha256(),
        labels,
        untrained=lambda seed: untrained_copy(model, seed + index),
    )


def run_model(thing: Any, index: int, task: str | None, label: str | None = None) -> RunModel:
    """Whatever a call is handed as model ``index``, as the run core takes it: a zoo entry, a language
    model (labelled by its data, ``label``), or a SequenceModel or ``torch.nn.Module`` that reads
    ``task``."""
    from alignsearch.models.lm import TextLM

    key = "models" if index == 0 else f"models[{index}]"
    if isinstance(thing, zoo.ZooEntry):
        return zoo_model(thing, index)
    if isinstance(thing, TextLM):
        return text_model(thing, index, label or PYTHON_ROWS)
    if isinstance(thing, torch.nn.Module):
        if task is None:
            raise ConfigError(
                "task", None, f"the task a {type(thing).__name__} reads (task='multiobject'), "
                "or a zoo entry (api.model) in its place",
            ).as_argument("task")  # fmt: skip
        return zoo_model(own_entry(thing, task_named(task)), index)
    if isinstance(thing, str):
        raise ConfigError(
            key, thing, f"{MODELS_ALLOWED}: api.model({thing!r}) finds a zoo model"
        ).as_argument(key)
    raise ConfigError(key, type(thing).__name__, MODELS_ALLOWED)


def run_models(models: Any, task: str | None, label: str | None = None) -> list[RunModel]:
    """:func:`run_model` of each of ``models`` (one, or a list or tuple)."""
    items = list(models) if isinstance(models, list | tuple) else [models]
    if not items:
        raise ConfigError("models", [], MODELS_ALLOWED).as_argument("models")
    return [run_model(m, i, task, label) for i, m in enumerate(items)]


# -- data ----------------------------------------------------------------------------------------------------
def file_digest(path: str | Path) -> str:
    """SHA-256 of a data file's bytes: what identifies the pairs or the corpus read from it."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def pairs_digest(data: PairsData) -> str:
    """SHA-256 over the token ids and positions of every split (and the counterfactual prompts, where the
    pairs have any): what identifies pairs given from Python."""
    digest = hashlib.sha256()
    for split in sorted(data.splits):
        pairs = data.splits[split]
        tensors = [pairs.ids, pairs.task_mask, pairs.base_pos, pairs.source_ids, pairs.source_pos]
        if data.natural_targets:
            tensors += [pairs.counterfactual_ids, pairs.counterfactual_pos, pairs.has_counterfactual]
        for tensor in tensors:
            digest.update(split.encode() + tensor.contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def corpus_digest(source: CorpusSource) -> str:
    """SHA-256 over a corpus's token ids and lengths per split (their shapes included) and the tokens
    predicted after each cut (``horizon``): what identifies a corpus given from Python. Two corpora of as
    many texts are two corpora; the same texts tokenised alike are the same one."""
    digest = hashlib.sha256(f"corpus horizon={source.horizon}".encode())
    for split in sorted(source.ids):
        for name, tensor in (("ids", source.ids[split]), ("lengths", source.lengths[split])):
            tensor = tensor.contiguous()
            digest.update(f"\0{split}.{name} {tensor.dtype} {tuple(tensor.shape)}\0".encode())
            digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def corpus_summary(source: CorpusSource) -> dict[str, Any]:
    """What ``results.json`` says of a corpus: its texts, and those too short to use."""
    return {"kind": "corpus", "texts": source.n_texts, "skipped": source.skipped}


def summary_of(source: TextPairSource | CorpusSource) -> dict[str, Any]:
    return corpus_summary(source) if isinstance(source, CorpusSource) else pairs_summary(source.data)


def file_data(source: TextPairSource | CorpusSource, path: str, settings: dict[str, Any]) -> RunData:
    """Pairs or a corpus read from the file ``path`` (as given: the flat config's ``data``), identified by
    the file's SHA-256; ``settings`` (how it was read: ``data.*``) join the run's settings."""
    identity = {"data_sha256": file_digest(path)}
    return RunData(source, identity, summary_of(source), label=str(path), settings=settings)


def python_pairs(data: PairsData | TextPairSource, variable: str = "variable") -> RunData:
    """Pairs from Python rows (:func:`alignsearch.api.text_pairs`), identified by :func:`pairs_digest`;
    ``variable`` names the aligned variable of :class:`~alignsearch.text.pairs.PairsData`."""
    source = TextPairSource(data, str(variable)) if isinstance(data, PairsData) else data
    return RunData(
        source, {"data_sha256": pairs_digest(source.data)}, pairs_summary(source.data), PYTHON_ROWS
    )


def python_corpus(source: CorpusSource, cache_dir: Path | None = None) -> RunData:
    """A corpus from Python texts (:func:`corpus`), identified by :func:`corpus_digest`; the models'
    predictions on it are cached in ``cache_dir`` (where it has no folder of its own), as a run caches a
    corpus file's."""
    if source.cache_dir is None and cache_dir is not None:
        source = dataclasses.replace(source, cache_dir=cache_dir)
    return RunData(source, {"data_sha256": corpus_digest(source)}, corpus_summary(source), PYTHON_ROWS)


def run_data(data: Any, variables: Any, cache_dir: Path | None = None) -> RunData | None:
    """What a call's ``data`` is, as the run core takes it (None: the models' tasks give the pairs)."""
    if data is None:
        return None
    if isinstance(data, PairsData | TextPairSource):
        variable = variables[0] if isinstance(variables, list | tuple) and variables else "variable"
        return python_pairs(data, str(variable))
    if isinstance(data, CorpusSource):
        return python_corpus(data, cache_dir)
    raise ConfigError("data", type(data).__name__, DATA_ALLOWED)


def corpus(texts: Iterable[str], tokenizers: Sequence[Any], **options: Any) -> CorpusSource:
    """A corpus of ``texts`` (strings, each as it is: as ``data=corpus`` reads a ``.jsonl``'s ``text``
    fields), tokenised by the first of ``tokenizers`` (the others must tokenise every text alike); see
    :func:`alignsearch.search.text_data.corpus_of_texts` for ``variable``, ``max_length``, ``horizon``,
    ``seed`` and ``fractions``."""
    if isinstance(texts, str | bytes) or not isinstance(texts, Iterable):
        raise ConfigError("texts", texts, "a list (or iterable) of strings", (list,))
    items = list(texts)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise ConfigError(f"texts[{i}]", text, "a string", (str,))
    return corpus_of_texts(items, list(tokenizers), **options)
