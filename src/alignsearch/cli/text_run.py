"""Alignment runs on language models reading text (``model=lm`` with ``data=pairs`` or ``data=corpus``).

    python run_alignment.py model=lm model.path=<folder> data=pairs data.path=pairs.jsonl layer=1 n_units=8
    python run_alignment.py model=lm model.path=<A> alignment=mas +partner.model_settings.path=<B> \\
        data=corpus data.path=texts.txt

The models come from their folders (not the zoo), the pairs from the data; everything after that (the
alignment functions, directions, training, records, resume, report) is the task runs' code. A run's
identity is the content of each model folder and of the data file, with the run's settings.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from omegaconf import DictConfig

from alignsearch.cli.checks import search_dirs
from alignsearch.cli.plan import member_configs
from alignsearch.components import alignment_choices, instantiate_checked
from alignsearch.errors import ConfigError
from alignsearch.models.hf import site_parts
from alignsearch.models.lm import DTYPES
from alignsearch.search.planning import check_unit_sizes
from alignsearch.search.spec import RunData, RunModel
from alignsearch.search.text_data import corpus_source, pairs_source, pairs_summary, text_model
from alignsearch.settings import RunSettings, plain

TEXT_MODEL = "alignsearch.models.lm.TextLM"
SOURCES = {"pairs": pairs_source, "corpus": corpus_source}
WIDTH_KEYS = ("hidden_size", "n_embd", "d_model")
"""Where a transformers config.json states the residual width."""
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")
"""Where it states the number of blocks."""
HEAD_KEYS = ("num_attention_heads", "n_head")
"""Where it states the number of attention heads."""


def is_text_run(cfg: DictConfig) -> bool:
    """A run on text: a ``data`` choice is made."""
    return cfg.get("data") is not None


def data_kind(cfg: DictConfig) -> str:
    """``pairs`` or ``corpus``: which of :data:`SOURCES` the ``data`` config builds."""
    target = str(cfg.data.get("_target_", ""))
    for kind, builder in SOURCES.items():
        if target == f"{builder.__module__}.{builder.__name__}":
            return kind
    raise ConfigError("data._target_", target, f"one of {', '.join(SOURCES)} (data=pairs or data=corpus)")


def _model_key(index: int) -> str:
    return "model" if index == 0 else "partner.model_settings"


def check_text_config(cfg: DictConfig) -> list[DictConfig]:
    """What can be checked of a text run without loading a model: the models are language-model
    folders, the data file exists, the sizes fit the folders' widths. Returns the member configs."""
    kind = data_kind(cfg)
    cfgs = member_configs(cfg)
    n_units = RunSettings.parse(cfg).n_units
    sizes = n_units if isinstance(n_units, tuple) else (n_units,)
    for i, c in enumerate(cfgs):
        if str(c.model.get("_target_")) != TEXT_MODEL:
            key = "model" if i == 0 else "partner.model"
            raise ConfigError(
                key, c.model.get("_target_"), f"model=lm (a language model folder) with data={kind}"
            )
        path = c.model.get("path")
        if not path or not (Path(str(path)) / "config.json").is_file():
            raise ConfigError(
                f"{_model_key(i)}.path", path, "a folder written by save_pretrained (model and tokenizer)"
            )
        dtype = c.model.get("dtype", "float32")
        if dtype not in DTYPES:
            raise ConfigError(f"{_model_key(i)}.dtype", dtype, f"one of {', '.join(DTYPES)}")
        check_folder_layer(c, Path(str(path)), i)
        width = folder_width(Path(str(path)), c.get("site"))
        if width is not None:  # the sizes against the site's width, before the model is loaded
            check_unit_sizes(sizes, width, str(path))
    if kind == "corpus" and len(cfgs) != 2:
        raise ConfigError(
            "alignment",
            cfg.alignment.name,
            f"a two-model alignment ({', '.join(alignment_choices(2, search_dirs()))}) with data=corpus",
        )
    data_path = cfg.data.get("path")
    if not data_path or not Path(str(data_path)).is_file():
        raise ConfigError("data.path", data_path, f"an existing {kind} file")
    return cfgs


def check_folder_layer(cfg: DictConfig, folder: Path, index: int) -> None:
    """A ConfigError for ``layer=<i>`` past the blocks a folder's ``config.json`` states, before the model
    is loaded (a site by module path is checked once it is)."""
    prefix = "partner." if index else ""
    if cfg.get("site") or not isinstance(cfg.layer, int):
        return
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return
    blocks = next((int(config[k]) for k in LAYER_KEYS if isinstance(config.get(k), int)), None)
    if blocks is not None and not 0 <= cfg.layer < blocks:
        layers = ", ".join(["embedding", *map(str, range(blocks))])
        raise ConfigError(f"{prefix}layer", cfg.layer, f"a layer of the model in {folder}: {layers}")


def folder_width(folder: Path, site: str | None = None) -> int | None:
    """The width of ``site`` (None: ``layer=``'s, the residual stream) as a transformers ``config.json``
    states it: the residual width, or for a head (``layer.<i>.head.<j>``) the head size (its ``head_dim``,
    else the residual width over the heads); None where the config does not say, or for a module path
    (checked once the model is loaded)."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    width = next((int(config[k]) for k in WIDTH_KEYS if isinstance(config.get(k), int)), None)
    parts = None if site is None else site_parts(str(site))
    if site is not None and parts is None:
        return None
    if width is None or parts is None or parts[0] != "head":
        return width
    if isinstance(config.get("head_dim"), int):
        return int(config["head_dim"])
    heads = next(
        (int(config[k]) for k in HEAD_KEYS if isinstance(config.get(k), int) and config[k] > 0), None
    )
    return None if heads is None else width // heads


def text_inputs(cfg: DictConfig, out_dir: Path) -> tuple[list[RunModel], RunData]:
    """The models and the data of a text run, loaded (ConfigError for anything that cannot work)."""
    cfgs = check_text_config(cfg)
    kind = data_kind(cfg)
    models = []
    for i, c in enumerate(cfgs):
        try:
            models.append(instantiate_checked(c.model, "model"))
        except ConfigError as e:
            raise (
                e
                if i == 0
                else ConfigError(e.key.replace("model.", "partner.model_settings.", 1), e.value, e.allowed)
            ) from None
    tokenizers = [m.tokenizer for m in models]
    if kind == "corpus":
        source = instantiate_checked(
            cfg.data, "data", tokenizers=tokenizers, cache_dir=out_dir / "predictions"
        )
        summary = {"kind": kind, "texts": source.n_texts, "skipped": source.skipped}
    else:
        check_same_vocabulary(tokenizers)
        source = instantiate_checked(cfg.data, "data", tokenizer=tokenizers[0])
        if source.data.worth_saying():
            print(f"pairs: {source.data.describe()}", flush=True)
        summary = pairs_summary(source.data)
    path = Path(str(cfg.data.path))
    data = RunData(
        source,
        {"data_sha256": hashlib.sha256(path.read_bytes()).hexdigest()},
        summary,
        label=str(cfg.data.path),
        settings=plain(cfg.data),
    )
    return [text_model(m, i, path.stem) for i, m in enumerate(models)], data


def check_same_vocabulary(tokenizers: list) -> None:
    """Pairs are tokenised once: every model must read them with the same vocabulary."""
    first = tokenizers[0].get_vocab()
    for other in tokenizers[1:]:
        if other.get_vocab() != first:
            raise ConfigError(
                "partner.model_settings.path",
                "a model with another tokenizer",
                "a model with the same tokenizer",
            )
