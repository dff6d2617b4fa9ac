"""HuggingFace causal language models as task models (``pip install -e ".[hf]"``), entirely offline.

Built from a ``transformers`` config with random weights (``model=hf``; small by default) and trained
on the numeric tasks like any other model, or loaded from a local directory written by
``save_pretrained`` (``model=hf model.path=...``). What wraps a ``transformers`` model this way is
:class:`HFSequenceModel`, shared with the frozen pretrained LMs of :mod:`alignsearch.models.lm`.

Sites, each with its width known before anything runs (from the config and the modules' layout):

- ``embedding``: the input to the first block (``d_model`` wide);
- ``layer.<i>``: the residual stream after block ``i`` (``d_model``);
- ``layer.<i>.attn``: the output of block ``i``'s attention, before it joins the residual stream
  (``d_model``);
- ``layer.<i>.mlp``: the output of block ``i``'s MLP (``d_model``);
- ``layer.<i>.head.<j>``: head ``j``'s output in block ``i``, before the attention output projection
  mixes the heads (``head_dim`` wide: the config's ``head_dim``, else ``d_model / n_heads``).

The component and head sites exist for the registered families of :data:`FAMILIES` that name their
blocks' parts (GPT-2, Llama and the models built like it: Mistral, Qwen2, ...; GPT-NeoX), found from the
config's ``model_type`` or else from the module paths inside the blocks; other models (OPT) offer
``embedding`` and ``layer.<i>``. A family is one record (:class:`Family`: its config keys, its block path,
its parts, whether a run can start at a layer) and one :func:`register_family` call, from any module
(:mod:`alignsearch.models.hf_families`); the sites and their widths are found before anything runs
(:mod:`alignsearch.models.hf_sites`), and a folder is loaded offline (:mod:`alignsearch.models.hf_load`).
This module is the wrapper that runs a model and reaches its sites. Forward hooks reach
them all: on the block (``layer.<i>``), on the attention or MLP module's output, and for a head a forward
pre-hook on the output projection that hands over, and replaces, only that head's columns of its input.
Any module path works too (``transformer.h.1``). ``python -m alignsearch.sites <folder>`` lists a model's
sites and widths (:mod:`alignsearch.cli.sites`; ``api.sites(model)`` from Python).

A run can also start at ``embedding`` or ``layer.<i>`` (:meth:`HFSequenceModel.encode_from`): given the
activations there, only the blocks above it, the final norm (and the read-out) run. An alignment computes
a frozen model's states at its site once per pair and trains on the blocks above it alone::

    h = lm.activations(ids, "layer.5")                       # once, without gradients
    lm.readout(lm.encode_from("layer.5", h, intervention))   # = lm(ids, intervention), 6 blocks fewer

    >>> sites = HFCausalLM(vocab_size=8, architecture="gpt2", d_model=32, n_layers=2, n_heads=2).sites
    >>> list(sites)[:6], sites["layer.1.head.1"]
    (['embedding', 'layer.0', 'layer.0.attn', 'layer.0.mlp', 'layer.0.head.0', 'layer.0.head.1'], 16)

Only ``embedding`` and ``layer.<i>`` hold the model's whole state
(:func:`~alignsearch.models.base.is_layer_site`): the sites :meth:`HFSequenceModel.encode_from` starts from.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from alignsearch.errors import ConfigError, require_positive
from alignsearch.models.base import Intervention, SequenceModel, check_vocab_size, is_layer_site, layer_sites
from alignsearch.models.hf_families import (
    FAMILIES,
    RESUMES,
    STANDARD,
    Components,
    Family,
    built_families,
    config_value,
    family_of,
    register_family,
)
from alignsearch.models.hf_load import LOCAL_ONLY, load_pretrained, require_transformers, why_not_loaded
from alignsearch.models.hf_sites import (
    SITE_FORMS,
    SiteLayout,
    find_blocks,
    find_components,
    folder_sites,
    folder_width,
    input_width,
    lm_sites,
    quiet_transformers,
    readable_sites,
    site_parts,
    site_width,
)
from alignsearch.models.hooks import check_all_seen, first_seen, hooked, module_at, recorder

if TYPE_CHECKING:
    from transformers import PreTrainedModel

MAX_POSITIONS = 128
"""Position table size of the models built here (the tasks' sequences are at most about 45 tokens)."""

__all__ = [  # the wrapper's, and the names of hf_families, hf_load and hf_sites it has always offered
    "FAMILIES",
    "LOCAL_ONLY",
    "MAX_POSITIONS",
    "RESUMES",
    "RESUME_TRANSFORMERS",
    "SITE_FORMS",
    "STANDARD",
    "Components",
    "Family",
    "HFCausalLM",
    "HFSequenceModel",
    "SiteLayout",
    "built_families",
    "column_hook",
    "config_value",
    "family_of",
    "find_blocks",
    "find_components",
    "folder_sites",
    "folder_width",
    "input_width",
    "lm_sites",
    "load_pretrained",
    "position_ids",
    "quiet_transformers",
    "readable_sites",
    "register_family",
    "require_transformers",
    "site_parts",
    "site_width",
    "why_not_loaded",
]

RESUME_TRANSFORMERS = 5
"""The ``transformers`` major version whose block signatures :meth:`HFSequenceModel.encode_from` follows
(older versions run the whole model)."""


def column_hook(module: nn.Module, start: int, width: int, fn: Callable[[Tensor], Tensor | None]):
    """A forward pre-hook handing ``fn`` the columns ``start:start + width`` of the module's (batch,
    sequence, features) input; a tensor ``fn`` returns replaces those columns only (the others pass as
    they were)."""

    def pre(mod: nn.Module, args: tuple, kwargs: dict):
        x = args[0] if args else next(iter(kwargs.values()))
        new = fn(x[..., start : start + width])
        if new is None:
            return None
        x = torch.cat([x[..., :start], new.to(x.dtype), x[..., start + width :]], dim=-1)
        if args:
            return (x, *args[1:]), kwargs
        first = next(iter(kwargs))
        return args, {**kwargs, first: x}

    return module.register_forward_pre_hook(pre, with_kwargs=True)


def position_ids(attention_mask: Tensor) -> Tensor:
    """The position of each token among its row's real tokens (``attention_mask`` 1), 0 on padding: what
    makes a left-padded row read like the same row unpadded.

    >>> position_ids(torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 0]])).tolist()
    [[0, 0, 0, 1, 2], [0, 1, 2, 3, 3]]
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class HFSequenceModel(SequenceModel):
    """What the models wrapping a ``transformers`` causal LM (``self.lm``) share: the sites ``embedding``
    (the input to the first block), ``layer.<i>`` (the residual stream after block ``i``), ``layer.<i>.attn``
    and ``layer.<i>.mlp`` (the outputs of its attention and MLP) and ``layer.<i>.head.<j>`` (head ``j``'s
    output before the attention output projection) through hooks, any module path inside ``self.lm``
    (``transformer.h.1``), and runs with an optional ``attention_mask`` (1 = a real token; position ids
    follow from it, so left padding reads like none).

    ``site_layout`` (:class:`SiteLayout`) says which sites the model has: ``n_heads`` heads of ``head_dim``.
    A subclass builds or loads its LM and calls :meth:`_attach` with it.
    """

    lm: PreTrainedModel
    blocks: nn.ModuleList
    site_layout: SiteLayout

    def _attach(self, lm: nn.Module, path: str | None = None) -> None:
        """Wrap ``lm``: find its blocks, parts and widths (``path`` only names the folder in an error)."""
        self.lm = cast("PreTrainedModel", lm)  # a transformers causal LM (or one with its members)
        self.blocks = find_blocks(lm, path)
        self.site_layout = SiteLayout.of(lm, self.blocks)
        self.d_model = self.site_layout.d_model
        self.n_layers = len(self.blocks)
        self._sites = self.site_layout.sites()

    @property
    def sites(self) -> dict[str, int]:
        """``embedding``, then for each block ``layer.<i>``, ``layer.<i>.attn``, ``layer.<i>.mlp`` and
        ``layer.<i>.head.<j>`` (those its family has: :class:`SiteLayout`), with their widths."""
        return dict(self._sites)

    def check_site(self, site: str) -> int:
        """The site's layer index (-1 for the embedding), or a one-line ConfigError naming the site forms
        and their ranges (a large model has thousands of sites: ``python -m alignsearch.sites`` lists
        them)."""
        if site not in self._sites:
            raise ConfigError(
                "site",
                site,
                f"a site of the {self.name}: {self.site_layout.describe()}, or a module path; "
                "python -m alignsearch.sites lists them",
            )
        named = site_parts(site)
        assert named is not None  # one of its sites
        return named[1]

    @property
    def module_root(self) -> nn.Module:
        """Module paths are read inside the HuggingFace model: ``transformer.h.1``."""
        return self.lm

    def _hook(self, site: str, fn: Callable[[Tensor], Tensor | None]) -> RemovableHandle:
        """A hook handing ``fn`` the site's (batch, sequence, width) activations (a tensor it returns replaces
        them): before the first block (``embedding``), after block ``i`` (``layer.<i>``), at the output of
        its attention or MLP (``layer.<i>.attn``, ``layer.<i>.mlp``), at head ``j``'s columns of the input
        of its attention output projection (``layer.<i>.head.<j>``), or at the output of the module at a
        module path."""
        if site not in self._sites:
            return hooked(module_at(self, site), fn)
        named = site_parts(site)
        assert named is not None  # one of its sites
        kind, layer, head = named
        parts = self.site_layout.components
        if kind == "layer":
            return hooked(self.blocks[layer], fn)
        if kind in ("attn", "mlp"):
            return hooked(self.blocks[layer].get_submodule(getattr(parts, kind)), fn)
        if kind == "head":
            assert parts is not None and head is not None  # a model with head sites knows its parts
            width = self.site_layout.head_dim
            return column_hook(self.blocks[layer].get_submodule(parts.out_proj), head * width, width, fn)

        def pre(module: nn.Module, args: tuple, kwargs: dict):
            if args:
                new = fn(args[0])
                return None if new is None else ((new, *args[1:]), kwargs)
            new = fn(kwargs["hidden_states"])
            return None if new is None else (args, {**kwargs, "hidden_states": new})

        return self.blocks[0].register_forward_pre_hook(pre, with_kwargs=True)

    def _run(self, ids: Tensor, attention_mask: Tensor | None) -> Tensor:
        """The final hidden states of ``self.lm``'s base model, with the mask and its position ids if given."""
        if attention_mask is None:  # right padding: causal positions never read the padding after them
            attention_mask = torch.ones_like(ids)  # (said explicitly, so transformers does not warn about it)
            return self.lm.base_model(
                input_ids=ids, attention_mask=attention_mask, use_cache=False
            ).last_hidden_state
        out = self.lm.base_model(
            input_ids=ids,
            attention_mask=attention_mask,
            position_ids=position_ids(attention_mask),
            use_cache=False,
        )
        return out.last_hidden_state

    def supports_resume(self, site: str) -> bool:
        """Whether :meth:`encode_from` can start at ``site``: ``embedding`` or ``layer.<i>`` of a model whose
        family's blocks run from a layer (:attr:`Family.resume`: GPT-2, Llama) under ``transformers`` 5 or
        later; the component and head sites (inside a block), module paths, other architectures and older
        versions run the whole model."""
        transformers = require_transformers()
        major = int(transformers.__version__.split(".")[0])
        family = family_of(self.lm.config)
        return (
            site in self._sites
            and is_layer_site(site)
            and family is not None
            and family.resume is not None
            and major >= RESUME_TRANSFORMERS
        )

    def encode_from(
        self,
        site: str,
        hidden: Tensor,
        intervention: Intervention | None = None,
        attention_mask: Tensor | None = None,
    ) -> Tensor:
        """The final hidden states of a run whose activations at ``site`` are ``hidden`` (batch, length, width),
        with ``intervention`` (at ``site``) applied to them first: what :meth:`encode` gives for the ids behind
        ``hidden``, computing only the blocks above the site and the final norm. ``attention_mask`` as in
        :meth:`encode` (the one ``hidden`` was computed with). Only for sites :meth:`supports_resume` accepts.

        Gradients reach ``hidden``'s intervened positions (and whatever produced them) through those blocks.
        """
        if not self.supports_resume(site):
            raise ConfigError("site", site, f"a site {type(self).__name__}.encode_from can start at")
        start = self.check_site(site) + 1
        if intervention is not None:
            hidden = intervention.apply(hidden)
        from transformers.masking_utils import create_causal_mask

        base = self.lm.base_model
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
            positions = torch.arange(hidden.shape[1], device=hidden.device)[None, :]
        else:
            positions = position_ids(attention_mask)
        causal = create_causal_mask(
            config=base.config,
            inputs_embeds=hidden,
            attention_mask=attention_mask,
            cache=None,
            position_ids=positions,
        )
        family = family_of(self.lm.config)
        assert family is not None and family.final_norm is not None  # supports_resume: a family that resumes
        # GPT-2's blocks take the causal mask (position embeddings were added before block 0); Llama's also
        # the rotary position embeddings
        context = {"attention_mask": causal, "position_ids": positions, "use_cache": False}
        if family.resume == "rotary":
            context["position_embeddings"] = base.get_submodule("rotary_emb")(hidden, position_ids=positions)
        final_norm = base.get_submodule(family.final_norm)
        for block in self.blocks[start:]:
            out = block(hidden, **context)
            hidden = out[0] if isinstance(out, tuple) else out
        return final_norm(hidden)

    def forward(
        self, ids: Tensor, intervention: Intervention | None = None, attention_mask: Tensor | None = None
    ) -> Tensor:
        """Logits (batch, length, vocab); ``attention_mask`` (1 on real tokens) for left-padded batches."""
        return self.readout(self.encode(ids, intervention, attention_mask))

    def encode(
        self, ids: Tensor, intervention: Intervention | None = None, attention_mask: Tensor | None = None
    ) -> Tensor:
        """The final hidden states (after the LM's last norm); ``intervention`` at a site or a module path;
        ``attention_mask`` (batch, length), 1 on real tokens, for left-padded batches."""
        handle = None if intervention is None else self._hook(intervention.site, intervention.apply)
        try:
            return self._run(ids, attention_mask)
        finally:
            if handle is not None:
                handle.remove()

    def readout(self, hidden: Tensor) -> Tensor:
        """Logits: the LM's output embedding (``lm_head``) applied to final hidden states."""
        return self.lm.get_output_embeddings()(hidden)

    def activations(self, ids: Tensor, site: str, attention_mask: Tensor | None = None) -> Tensor:
        """The (batch, length, width) activations of a site or module path while reading ``ids``."""
        return first_seen(site, lambda fn: self._hook(site, fn), lambda: self._run(ids, attention_mask))

    def activations_of(
        self, ids: Tensor, sites: list[str], attention_mask: Tensor | None = None
    ) -> dict[str, Tensor]:
        """:meth:`activations` of several sites (or module paths) in one run of the model: a hook on each
        of ``embedding``, ``layer.<i>`` and the module paths records what it sees first; any other named
        site is read by :meth:`activations` on its own. A ConfigError for a site that never runs."""
        stream = layer_sites(self.d_model, self.n_layers)
        together = [s for s in sites if s in stream or s not in self.sites]
        seen = {s: self.activations(ids, s, attention_mask) for s in sites if s not in together}
        handles = [self._hook(site, recorder(seen, site)) for site in together]
        try:
            if together:
                self._run(ids, attention_mask)
        finally:
            for handle in handles:
                handle.remove()
        check_all_seen(sites, seen)
        return seen


class HFCausalLM(HFSequenceModel):
    """A ``transformers`` causal LM behind the task-model contract (sites, encode, readout)."""

    def __init__(
        self,
        vocab_size: int,
        architecture: str = "gpt2",
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 2,
        dropout: float = 0.0,
        path: str | None = None,
    ) -> None:
        super().__init__()
        transformers = require_transformers()
        check_vocab_size(vocab_size)
        self.architecture, self.path = architecture, path
        if path is not None:
            lm = load_pretrained(Path(path))
            if cast(nn.Embedding, lm.get_input_embeddings()).num_embeddings < vocab_size:
                raise ConfigError("model.path", path, f"a model with at least {vocab_size} token embeddings")
        else:
            if architecture not in built_families():
                raise ConfigError(
                    "architecture", architecture, f"one of {', '.join(built_families())} (or model.path)"
                )
            for key, value in (("d_model", d_model), ("n_layers", n_layers), ("n_heads", n_heads)):
                require_positive(key, value)
            if d_model % n_heads:
                raise ConfigError("n_heads", n_heads, f"a divisor of d_model ({d_model})")
            family = FAMILIES[architecture]
            settings: dict[str, Any] = {
                family.d_model: d_model,
                family.n_layers: n_layers,
                family.n_heads: n_heads,
                family.max_positions: MAX_POSITIONS,
            }
            if family.mlp_width is not None:
                settings[family.mlp_width] = 4 * d_model
            settings |= dict.fromkeys(family.dropout, dropout)
            settings |= {
                "bos_token_id": None,
                "eos_token_id": None,
                "pad_token_id": None,
            }  # ours live in the task
            config = transformers.AutoConfig.for_model(architecture, vocab_size=vocab_size, **settings)
            lm = transformers.AutoModelForCausalLM.from_config(config)
        self._attach(lm, path)
        self.n_heads, self.dropout = n_heads, dropout

    def settings(self) -> dict[str, Any]:
        """The constructor's arguments; with ``path``, ``d_model`` and ``n_layers`` are the loaded model's."""
        return super().settings() | {"d_model": self.d_model, "n_layers": self.n_layers}

    naming_keys = ("architecture",)

    @property
    def name(self) -> str:
        return f"hf_{self.architecture}"
