"""HuggingFace causal language models as task models (``pip install -e ".[hf]"``), entirely offline.

Built from a ``transformers`` config with random weights (``model=hf``; small by default) and trained
on the numeric tasks like any other model, or loaded from a local directory written by
``save_pretrained`` (``model=hf model.path=...``). Sites are named like the other models':
``embedding`` (the input to the first block) and ``layer.<i>`` (the residual stream after block ``i``),
reached with forward hooks on the blocks; any module path works too (``transformer.h.1``). What wraps a
``transformers`` model this way is :class:`HFSequenceModel`, shared with the frozen pretrained LMs of
:mod:`alignsearch.models.lm`.

A run can also start at a named site (:meth:`HFSequenceModel.encode_from`): given the activations there,
only the blocks above it, the final norm (and the read-out) run. An alignment computes a frozen model's
states at its site once per pair and trains on the blocks above it alone::

    h = lm.activations(ids, "layer.5")                       # once, without gradients
    lm.readout(lm.encode_from("layer.5", h, intervention))   # = lm(ids, intervention), 6 blocks fewer

    >>> HFCausalLM(vocab_size=8, architecture="gpt2", d_model=32, n_layers=2, n_heads=2).sites
    {'embedding': 32, 'layer.0': 32, 'layer.1': 32}
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from alignsearch.errors import ConfigError, require_positive
from alignsearch.models.base import Intervention, SequenceModel, check_vocab_size, layer_sites
from alignsearch.models.hooks import first_seen, hooked, module_at, recorder

MAX_POSITIONS = 128
"""Position table size of the models built here (the tasks' sequences are at most about 45 tokens)."""

CONFIG_KEYS = {  # our setting -> the architecture's config key
    "gpt2": {"d_model": "n_embd", "n_layers": "n_layer", "n_heads": "n_head", "max_positions": "n_positions"},
    "llama": {
        "d_model": "hidden_size",
        "n_layers": "num_hidden_layers",
        "n_heads": "num_attention_heads",
        "max_positions": "max_position_embeddings",
    },
}
BLOCK_PATHS = ("transformer.h", "model.layers", "gpt_neox.layers", "model.decoder.layers")
RESUMABLE = ("gpt2", "llama")
"""The ``model_type``s whose blocks :meth:`HFSequenceModel.encode_from` runs by itself: GPT-2 blocks take the
hidden states and the causal mask, Llama blocks also the rotary position embeddings."""
RESUME_TRANSFORMERS = 5
"""The ``transformers`` major version whose block signatures :meth:`HFSequenceModel.encode_from` follows
(older versions run the whole model)."""


def require_transformers():
    """The ``transformers`` package, or a one-line ConfigError saying how to get it."""
    try:
        import transformers
    except ImportError:
        raise ConfigError(
            "model", "hf", 'the transformers package: pip install -e ".[hf]" (it is an optional extra)'
        ) from None
    return transformers


def load_pretrained(path: Path, dtype: torch.dtype | None = None) -> nn.Module:
    """The causal LM saved in the folder ``path`` (by ``save_pretrained``; nothing is downloaded), in
    ``dtype`` (None: as its config says), or a one-line ConfigError.

        load_pretrained(Path("checkpoints/gpt2"), torch.bfloat16)  # a GPT2LMHeadModel in bfloat16
    """
    transformers = require_transformers()
    if not (path / "config.json").is_file():
        raise ConfigError("model.path", str(path), "a folder written by save_pretrained (with config.json)")
    transformers.utils.logging.disable_progress_bar()  # a local folder loads at once: no bar in the log
    try:
        given = {} if dtype is None else {"dtype": dtype}  # transformers before 4.56 knows no ``dtype``
        return transformers.AutoModelForCausalLM.from_pretrained(path, local_files_only=True, **given)
    except (ValueError, OSError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError("model.path", str(path), f"a causal language model ({first})") from None


def find_blocks(lm: nn.Module, path: str | None = None) -> nn.ModuleList:
    """The list of transformer blocks of a ``transformers`` causal LM (at one of :data:`BLOCK_PATHS`), or a
    one-line ConfigError naming ``path`` (the folder it came from)."""
    for where in BLOCK_PATHS:
        try:
            blocks = lm.get_submodule(where)
        except AttributeError:
            continue
        if isinstance(blocks, nn.ModuleList):
            return blocks
    raise ConfigError("model.path", path, f"a causal LM whose blocks are at one of {', '.join(BLOCK_PATHS)}")


def position_ids(attention_mask: Tensor) -> Tensor:
    """The position of each token among its row's real tokens (``attention_mask`` 1), 0 on padding: what
    makes a left-padded row read like the same row unpadded.

    >>> position_ids(torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 0]])).tolist()
    [[0, 0, 0, 1, 2], [0, 1, 2, 3, 3]]
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class HFSequenceModel(SequenceModel):
    """What the models wrapping a ``transformers`` causal LM (``self.lm``) share: the sites ``embedding``
    (the input to the first block) and ``layer.<i>`` (the residual stream after block ``i``) through hooks
    on the blocks, any module path inside ``self.lm`` (``transformer.h.1``), and runs with an optional
    ``attention_mask`` (1 = a real token; position ids follow from it, so left padding reads like none).

    A subclass builds or loads its LM and calls :meth:`_attach` with it.
    """

    lm: nn.Module
    blocks: nn.ModuleList

    def _attach(self, lm: nn.Module, path: str | None = None) -> None:
        """Wrap ``lm``: find its blocks and widths (``path`` only names the folder in an error)."""
        self.lm = lm
        self.blocks = find_blocks(lm, path)
        self.d_model = int(lm.config.hidden_size)
        self.n_layers = len(self.blocks)

    @property
    def sites(self) -> dict[str, int]:
        """``embedding`` (the input to the first block) and the residual stream after each block."""
        return layer_sites(self.d_model, self.n_layers)

    @property
    def module_root(self) -> nn.Module:
        """Module paths are read inside the HuggingFace model: ``transformer.h.1``."""
        return self.lm

    def _hook(self, site: str, fn: Callable[[Tensor], Tensor | None]) -> RemovableHandle:
        """A hook handing ``fn`` the site's (batch, sequence, width) activations (a tensor it returns replaces
        them): before the first block (``embedding``), after block ``i`` (``layer.<i>``), or at the output
        of the module at a module path."""
        if site not in self.sites:
            return hooked(module_at(self, site), fn)
        layer = self.check_site(site)
        if layer >= 0:
            return hooked(self.blocks[layer], fn)

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
        """Whether :meth:`encode_from` can start at ``site``: a named site (``embedding``, ``layer.<i>``) of a
        GPT-2 or Llama model (:data:`RESUMABLE`) under ``transformers`` 5 or later; module paths, other
        architectures and older versions run the whole model."""
        transformers = require_transformers()
        major = int(transformers.__version__.split(".")[0])
        model_type = getattr(self.lm.config, "model_type", None)
        return site in self.sites and model_type in RESUMABLE and major >= RESUME_TRANSFORMERS

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
        if self.lm.config.model_type == "llama":
            context = {
                "attention_mask": causal,
                "position_ids": positions,
                "position_embeddings": base.rotary_emb(hidden, position_ids=positions),
                "use_cache": False,
            }
            final_norm = base.norm
        else:  # gpt2: its blocks take the causal mask (position embeddings were added before block 0)
            context = {"attention_mask": causal, "position_ids": positions, "use_cache": False}
            final_norm = base.ln_f
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
        for site in sites:
            if site not in seen:
                raise ConfigError(
                    "site", site, "a module that runs while the model reads its input (not the read-out)"
                )
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
            if lm.get_input_embeddings().num_embeddings < vocab_size:
                raise ConfigError("model.path", path, f"a model with at least {vocab_size} token embeddings")
        else:
            if architecture not in CONFIG_KEYS:
                raise ConfigError(
                    "architecture", architecture, f"one of {', '.join(CONFIG_KEYS)} (or model.path)"
                )
            for key, value in (("d_model", d_model), ("n_layers", n_layers), ("n_heads", n_heads)):
                require_positive(key, value)
            if d_model % n_heads:
                raise ConfigError("n_heads", n_heads, f"a divisor of d_model ({d_model})")
            names = CONFIG_KEYS[architecture]
            settings = {
                names["d_model"]: d_model,
                names["n_layers"]: n_layers,
                names["n_heads"]: n_heads,
                names["max_positions"]: MAX_POSITIONS,
            }
            if architecture == "gpt2":
                settings |= {"resid_pdrop": dropout, "embd_pdrop": dropout, "attn_pdrop": dropout}
            else:
                settings |= {"intermediate_size": 4 * d_model, "attention_dropout": dropout}
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
