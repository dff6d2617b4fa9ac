"""Alignment runs on language models reading text (``model=lm`` with ``data=pairs`` or ``data=corpus``).

    python run_alignment.py model=lm model.path=<folder> data=pairs data.path=pairs.jsonl layer=1 n_units=8
    python run_alignment.py model=lm model.path=<A> alignment=mas +partner.model_settings.path=<B> \\
        data=corpus data.path=texts.txt

The models come from their folders (not the zoo), the pairs from the data; everything after that (the
alignment functions, directions, training, records, resume, report) is the task runs' code. A run's
identity is the content of each model folder and of the data file, with the run's settings: the config
read here, the inputs made by :mod:`alignsearch.inputs`, as the Python API makes them.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from alignsearch import inputs
from alignsearch.cli.config_dirs import search_dirs
from alignsearch.cli.plan import member_configs
from alignsearch.components import alignment_choices, instantiate_checked
from alignsearch.errors import ConfigError
from alignsearch.models.hf_sites import readable_sites, site_parts, site_width
from alignsearch.models.lm import DTYPES, TEXT_MODEL
from alignsearch.search.planning import check_unit_sizes
from alignsearch.search.spec import RunData, RunModel
from alignsearch.search.text_data import corpus_source, pairs_source
from alignsearch.settings import RunSettings, plain

SOURCES = {"pairs": pairs_source, "corpus": corpus_source}
MODEL_SETTINGS = ("path", "dtype")
"""What ``model=lm`` takes (beside its ``_target_``)."""


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
        for key in c.model:
            if key != "_target_" and key not in MODEL_SETTINGS:
                raise ConfigError(
                    f"{_model_key(i)}.{key}",
                    c.model[key],
                    f"a setting of model=lm: {', '.join(MODEL_SETTINGS)}",
                )
        sites = readable_sites(str(path))  # from config.json alone: None if it cannot be built here
        check_folder_layer(c, Path(str(path)), i, sites)
        width = site_width(sites, c.get("site"))
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


def check_folder_layer(cfg: DictConfig, folder: Path, index: int, sites: dict[str, int] | None) -> None:
    """A ConfigError for ``layer=<i>`` past the blocks of the model in ``folder`` (its ``sites``, from its
    ``config.json``: :func:`alignsearch.models.hf.readable_sites`), before the model is loaded (a site by
    module path is checked once it is)."""
    prefix = "partner." if index else ""
    if cfg.get("site") or not isinstance(cfg.layer, int) or sites is None:
        return
    blocks = sum((site_parts(site) or ("",))[0] == "layer" for site in sites)
    if not 0 <= cfg.layer < blocks:
        layers = ", ".join(["embedding", *map(str, range(blocks))])
        raise ConfigError(f"{prefix}layer", cfg.layer, f"a layer of the model in {folder}: {layers}")


def text_inputs(cfg: DictConfig, out_dir: Path) -> tuple[list[RunModel], RunData]:
    """The models and the data of a text run, loaded (ConfigError for anything that cannot work): the
    config read here, the run's inputs made by :mod:`alignsearch.inputs`."""
    cfgs = check_text_config(cfg)
    kind = data_kind(cfg)
    models = [
        inputs.language_model_folder(c.model.path, c.model.get("dtype", "float32"), i)
        for i, c in enumerate(cfgs)
    ]
    tokenizers = [m.tokenizer for m in models]
    if kind == "corpus":
        source = instantiate_checked(
            cfg.data, "data", tokenizers=tokenizers, cache_dir=out_dir / "predictions"
        )
    else:
        check_same_vocabulary(tokenizers)
        source = instantiate_checked(cfg.data, "data", tokenizer=tokenizers[0])
        if source.data.worth_saying():
            print(f"pairs: {source.data.describe()}", flush=True)
    data = inputs.file_data(source, str(cfg.data.path), plain(cfg.data))
    return [inputs.text_model(m, i, Path(str(cfg.data.path)).stem) for i, m in enumerate(models)], data


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
