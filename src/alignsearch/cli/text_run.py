"""Alignment runs on language models reading text (``model=lm`` with ``data=pairs`` or ``data=corpus``).

    python run_alignment.py model=lm model.path=<folder> data=pairs data.path=pairs.jsonl layer=1 n_units=8
    python run_alignment.py model=lm model.path=<A> alignment=mas +partner.model_settings.path=<B> \\
        data=corpus data.path=texts.txt

The models come from their folders (not the zoo), the pairs from the data; everything after that (the
alignment functions, directions, training, records, resume, report) is the task runs' code. A run's
identity is the content of each model folder and of the data file, with the run's settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from alignsearch.cli.plan import assemble_plan, member_configs, site_name
from alignsearch.components import instantiate_checked
from alignsearch.errors import ConfigError
from alignsearch.models import SequenceModel, hooks
from alignsearch.search.spec import AlignmentPlan, Member
from alignsearch.search.text_data import corpus_source, pairs_source
from alignsearch.settings import AlignmentSettings

TEXT_MODEL = "alignsearch.models.lm.TextLM"
SOURCES = {"pairs": pairs_source, "corpus": corpus_source}
WIDTH_KEYS = ("hidden_size", "n_embd", "d_model")
"""Where a transformers config.json states the residual width."""


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
        width = folder_width(Path(str(path)))
        n_units = cfg.n_units if isinstance(cfg.n_units, int) else max(cfg.n_units, default=0)
        if (
            width is not None
            and not isinstance(n_units, bool)
            and isinstance(n_units, int)
            and n_units > width
        ):
            raise ConfigError("n_units", n_units, f"an integer in [1, {width}] (the width of {path})")
    if kind == "corpus" and len(cfgs) != 2:
        raise ConfigError(
            "alignment",
            cfg.alignment.name,
            "a two-model alignment (mas, unimas, clmas, stitch) with data=corpus",
        )
    data_path = cfg.data.get("path")
    if not data_path or not Path(str(data_path)).is_file():
        raise ConfigError("data.path", data_path, f"an existing {kind} file")
    return cfgs


def folder_width(folder: Path) -> int | None:
    """The residual width a transformers ``config.json`` states (None if it names none)."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return next((int(config[k]) for k in WIDTH_KEYS if isinstance(config.get(k), int)), None)


@dataclass
class TextRun:
    """A checked text run: its models, plan, identity and what the data held."""

    models: list[SequenceModel]
    plan: AlignmentPlan
    identity: dict[str, Any]
    data: dict[str, Any]
    choices: dict[str, str]
    named: dict[str, Any]
    """The models' settings as flat config keys (:func:`model_settings`)."""


def prepare_text_run(cfg: DictConfig, out_dir: Path) -> TextRun:
    """Load the models and the data, and plan the alignment (ConfigError for anything that cannot work)."""
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
    a = AlignmentSettings.parse(cfg.alignment)
    tokenizers = [m.tokenizer for m in models]
    if kind == "corpus":
        source = instantiate_checked(
            cfg.data, "data", tokenizers=tokenizers, cache_dir=out_dir / "predictions"
        )
        a = dataclasses.replace(a, stepwise=True)  # the models' own runs on one text: every position
        data = {"kind": kind, "texts": source.n_texts, "skipped": source.skipped}
    else:
        check_same_vocabulary(tokenizers)
        source = instantiate_checked(cfg.data, "data", tokenizer=tokenizers[0])
        if a.stepwise:
            raise ConfigError("alignment.stepwise", True, f"false with data={kind} (a position per prompt)")
        problems = source.data.problems
        if problems:
            print(f"pairs: {source.data.describe()}", flush=True)
        data = {
            "kind": kind,
            "rows": source.data.n_rows,
            "pairs": {split: len(p) for split, p in source.data.splits.items()},
            "skipped": [{"line": p.line, "reason": p.reason} for p in problems],
        }
    plan = plan_text(cfg, cfgs, models, source, a)
    identity = {
        "models": [{"name": m.name, "weights_sha256": m.weights_sha256()} for m in models],
        "data_sha256": hashlib.sha256(Path(str(cfg.data.path)).read_bytes()).hexdigest(),
    }
    choices = {"task": Path(str(cfg.data.path)).stem, "model": models[0].name}
    return TextRun(models, plan, identity, data, choices, model_settings(models))


def model_settings(models: list[SequenceModel]) -> dict[str, Any]:
    """Each language model's settings as flat config keys (``model.path``: two folders of the same name are
    two models), the partner's starting with ``partner_``."""
    return {
        f"{'partner_' if i else ''}model.{key}": value
        for i, model in enumerate(models)
        for key, value in (model.settings() if hasattr(model, "settings") else {}).items()
    }


def plan_text(
    cfg: DictConfig, cfgs: list[DictConfig], models: list[SequenceModel], source, a: AlignmentSettings
) -> AlignmentPlan:
    """The plan of a text alignment: each model's site and width, the data's variable, and ``a``."""
    members = [_member(c, m, source.variable, i) for i, (c, m) in enumerate(zip(cfgs, models, strict=True))]
    return assemble_plan(cfg, a, members, source)


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


def _member(cfg: DictConfig, model: SequenceModel, variable: str, index: int) -> Member:
    prefix = "" if index == 0 else "partner."
    site = site_name(cfg.layer, cfg.get("site"))
    if cfg.get("site") or site not in model.sites:
        if not cfg.get("site"):
            layers = ", ".join(s.removeprefix("layer.") for s in model.sites)
            raise ConfigError(f"{prefix}layer", cfg.layer, f"a layer of the {model.name}: {layers}")
        try:
            width = hooks.site_width(model, site)
        except ConfigError as e:
            raise ConfigError(f"{prefix}site", e.value, e.allowed) from None
    else:
        width = model.sites[site]
    return Member(model.name, None, site, width, None, [variable])


def untrained_copies(models: list[SequenceModel], seed: int) -> list[SequenceModel]:
    """Each language model with freshly initialised weights (its architecture and config, ``seed``), and
    the same tokenizer: the ``untrained`` control."""
    import copy

    import torch

    from alignsearch.models.hf import require_transformers

    transformers = require_transformers()
    out = []
    for i, model in enumerate(models):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + i)
            fresh = transformers.AutoModelForCausalLM.from_config(model.lm.config)
        twin = copy.deepcopy(model)
        twin.lm.load_state_dict(fresh.state_dict())
        out.append(twin)
    return out
