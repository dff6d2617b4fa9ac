"""The sites of a ``transformers`` causal LM and their widths, found from its config and the module paths
inside its blocks, before anything runs: ``embedding``, then for each block ``layer.<i>`` (the residual
stream after it), ``layer.<i>.attn`` and ``layer.<i>.mlp`` (the outputs of its attention and MLP) and
``layer.<i>.head.<j>`` (head ``j``'s output before the attention output projection), those its family
has (:mod:`alignsearch.models.hf_families`). A folder's sites are read from its ``config.json`` alone
(:func:`folder_sites`: the model is built on the meta device). The model wrapper that hooks them is
:class:`alignsearch.models.hf.HFSequenceModel`."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from alignsearch.errors import ConfigError
from alignsearch.models.hf_families import FAMILIES, Components, config_value, family_of
from alignsearch.models.hf_load import LOCAL_ONLY, require_transformers, why_not_loaded

SITE_FORMS = ("embedding", "layer.<i>", "layer.<i>.attn", "layer.<i>.mlp", "layer.<i>.head.<j>")
_SITE = re.compile(r"layer\.(\d+)(?:\.(attn|mlp)|\.head\.(\d+))?")


def site_parts(site: str) -> tuple[str, int, int | None] | None:
    """What a site name says, by its form alone: ``(kind, layer, head)``, kind one of ``embedding``,
    ``layer``, ``attn``, ``mlp`` and ``head``; None for a name of no site form (a module path).

    >>> site_parts("layer.3.head.1"), site_parts("layer.0.mlp"), site_parts("embedding")
    (('head', 3, 1), ('mlp', 0, None), ('embedding', -1, None))
    >>> site_parts("transformer.h.1") is None
    True
    """
    if site == "embedding":
        return "embedding", -1, None
    match = _SITE.fullmatch(site)
    if match is None:
        return None
    layer, part, head = match.groups()
    if head is not None:
        return "head", int(layer), int(head)
    return part or "layer", int(layer), None


@dataclass(frozen=True)
class SiteLayout:
    """The sites of a ``transformers`` causal LM and their widths, from its config and the module paths
    inside its blocks (nothing runs): ``n_heads`` is 0 where the heads cannot be told apart (no known
    output projection, or one whose input is not ``n_heads * head_dim`` wide)."""

    n_layers: int
    d_model: int
    components: Components | None
    n_heads: int
    head_dim: int

    @classmethod
    def of(cls, lm: nn.Module, blocks: nn.ModuleList) -> SiteLayout:
        config = lm.config
        d_model = int(config_value(config, "d_model"))
        components = find_components(config, blocks)
        n_heads = head_dim = 0
        if components is not None:
            heads = config_value(config, "n_heads")
            if isinstance(heads, int) and heads > 0:
                size = config_value(config, "head_dim") or d_model // heads
                projection = blocks[0].get_submodule(components.out_proj)
                if input_width(projection) == heads * size:
                    n_heads, head_dim = heads, int(size)
        return cls(len(blocks), d_model, components, n_heads, head_dim)

    def sites(self) -> dict[str, int]:
        """``embedding``, then each layer's sites: ``layer.<i>``, ``layer.<i>.attn``, ``layer.<i>.mlp`` and
        ``layer.<i>.head.<j>`` for each head (those the layout has)."""
        out = {"embedding": self.d_model}
        for i in range(self.n_layers):
            out[f"layer.{i}"] = self.d_model
            if self.components is not None:
                out[f"layer.{i}.attn"] = out[f"layer.{i}.mlp"] = self.d_model
            out |= {f"layer.{i}.head.{j}": self.head_dim for j in range(self.n_heads)}
        return out

    def describe(self) -> str:
        """The site forms with their ranges, for an error: ``embedding, layer.<i>, ... (i in 0..1, j in
        0..1)``."""
        forms = [f for f in SITE_FORMS if f.count(".") < 2 or self.components is not None]
        if not self.n_heads:
            forms = [f for f in forms if ".head." not in f]
        ranges = f"i in 0..{self.n_layers - 1}" + (f", j in 0..{self.n_heads - 1}" if self.n_heads else "")
        return f"{', '.join(forms)} ({ranges})"


def find_components(config: Any, blocks: nn.ModuleList) -> Components | None:
    """The parts of the config's family (:class:`Family`), or for a model of no registered family the
    first family's whose paths all exist in every block; None if none fits (the model then has no
    component or head sites)."""
    family = family_of(config)
    options = [family.components] if family is not None else [f.components for f in FAMILIES.values()]
    candidates = [c for c in options if c is not None]
    for components in candidates:
        if all(_has(block, path) for block in blocks for path in vars(components).values()):
            return components
    return None


def _has(module: nn.Module, path: str) -> bool:
    try:
        module.get_submodule(path)
    except AttributeError:
        return False
    return True


def input_width(module: nn.Module) -> int | None:
    """The width a projection reads: an ``nn.Linear``'s ``in_features``, a GPT-2 ``Conv1D``'s ``nx``."""
    for name in ("in_features", "nx"):
        width = getattr(module, name, None)
        if isinstance(width, int):
            return width
    return None


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """``transformers`` logs only errors inside (a config's warnings are not what a listing is about)."""
    transformers = require_transformers()
    level = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers.utils.logging.set_verbosity(level)


def folder_sites(path: str | Path) -> dict[str, int]:
    """The sites and widths of the causal LM saved in the folder ``path``, from its ``config.json`` alone:
    the model is built on the meta device (no weights are read, no memory is taken), so a large model
    lists at once; a one-line ConfigError for a folder that holds no causal LM.

        folder_sites("checkpoints/gpt2")["layer.5.head.3"]  # 64
    """
    transformers = require_transformers()
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise ConfigError("model.path", str(path), "a folder written by save_pretrained (with config.json)")
    with quiet_transformers():
        try:
            config = transformers.AutoConfig.from_pretrained(folder, **LOCAL_ONLY)
            with torch.device("meta"):
                lm = transformers.AutoModelForCausalLM.from_config(config)
        except (ValueError, OSError, KeyError, TypeError) as e:
            raise ConfigError(
                "model.path", str(path), f"a causal language model ({why_not_loaded(e)})"
            ) from None
    return lm_sites(lm, str(path))


def readable_sites(path: str | Path) -> dict[str, int] | None:
    """:func:`folder_sites`, or None where the folder's model cannot be built from its ``config.json``
    here (loading it then says why, in its own line): what a command checks before loading a model."""
    try:
        return folder_sites(path)
    except Exception:  # noqa: BLE001 - not known before loading: the load refuses the folder
        return None


def site_width(sites: dict[str, int] | None, site: str | None = None) -> int | None:
    """The width of ``site`` among a model's ``sites`` (None: ``layer=``'s, the residual stream), or None
    where it is not known: no sites, or a module path (``transformer.h.0.mlp.c_fc``: known once the model
    is loaded).

    >>> site_width({"embedding": 64, "layer.0": 64, "layer.0.head.1": 32}, "layer.0.head.1")
    32
    """
    if sites is None:
        return None
    return sites.get("embedding" if site is None else str(site))


def folder_width(path: str | Path, site: str | None = None) -> int | None:
    """The width of ``site`` (None: the residual stream) of the causal LM in the folder ``path``, from its
    ``config.json`` alone (:func:`folder_sites`: for a head, the head size); None where that does not
    tell (:func:`readable_sites`, :func:`site_width`).

        folder_width("checkpoints/gpt2", "layer.5.head.3")  # 64
    """
    return site_width(readable_sites(path), site)


def lm_sites(lm: nn.Module, path: str | None = None) -> dict[str, int]:
    """The sites and widths of a ``transformers`` causal LM (as :class:`HFSequenceModel` names them), or a
    one-line ConfigError if its blocks are not found (``path`` names its folder there)."""
    return SiteLayout.of(lm, find_blocks(lm, path)).sites()


def find_blocks(lm: nn.Module, path: str | None = None) -> nn.ModuleList:
    """The list of transformer blocks of a ``transformers`` causal LM (at its family's path, or for a model of
    no registered family at the first family's path that holds one: :data:`FAMILIES`), or a
    one-line ConfigError naming ``path`` (the folder it came from)."""
    family = family_of(getattr(lm, "config", None))
    paths = [family.blocks] if family else list(dict.fromkeys(f.blocks for f in FAMILIES.values()))
    for where in paths:
        try:
            blocks = lm.get_submodule(where)
        except AttributeError:
            continue
        if isinstance(blocks, nn.ModuleList):
            return blocks
    raise ConfigError("model.path", path, f"a causal LM whose blocks are at one of {', '.join(paths)}")
