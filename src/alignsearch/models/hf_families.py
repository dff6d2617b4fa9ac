"""One record per HuggingFace family (a ``transformers`` config's ``model_type``): where its sizes are in
its config, where its blocks and their parts are, whether a run can start at a layer, and how
``model=hf`` builds one. Adding a family is one :func:`register_family` call, from any module; the model
wrapper (:mod:`alignsearch.models.hf`), the site discovery (:mod:`alignsearch.models.hf_sites`),
``api.sites`` and the checks made before a model loads all read :data:`FAMILIES`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Components:
    """Where a block's parts are, as module paths inside the block: its attention (whose output, or the
    first tensor of its output tuple, is the ``layer.<i>.attn`` site), its MLP (``layer.<i>.mlp``) and the
    attention's output projection, whose input holds the heads side by side (``layer.<i>.head.<j>``)."""

    attn: str
    mlp: str
    out_proj: str


@dataclass(frozen=True)
class Family:
    """What alignsearch knows of one ``transformers`` family (a config's ``model_type``): where its sizes
    are in its config, where its blocks and their parts are, whether a run can start at a layer, and how
    ``model=hf`` builds one from settings. Adding a family is one :func:`register_family` call::

        register_family(Family("gpt_neo", blocks="transformer.h", n_layers="num_layers",
                               n_heads="num_heads", components=Components("attn", "mlp",
                               "attn.attention.out_proj")))
    """

    model_type: str
    """The config's ``model_type`` (``gpt2``)."""
    blocks: str
    """The module path of the list of blocks inside the causal LM (``transformer.h``)."""
    components: Components | None = None
    """Where each block's attention, MLP and head projection are (None: only ``embedding`` and
    ``layer.<i>``)."""
    d_model: str = "hidden_size"
    """The config key of the residual width; the next four, of the blocks, the heads, the head size (None:
    the residual width over the heads) and the position table (what ``model=hf`` sets)."""
    n_layers: str = "num_hidden_layers"
    n_heads: str = "num_attention_heads"
    head_dim: str | None = "head_dim"
    max_positions: str = "max_position_embeddings"
    resume: str | None = None
    """How its blocks run from a layer's states (:meth:`HFSequenceModel.encode_from`, the prefix cache):
    ``"positions"`` (GPT-2: they take the hidden states, the causal mask and the position ids),
    ``"rotary"`` (Llama: also the rotary position embeddings of the base model's ``rotary_emb``); None: a run
    always runs the whole model."""
    final_norm: str | None = None
    """With ``resume``: the module path of the final norm inside the base model (``ln_f``)."""
    buildable: bool = False
    """Whether ``model=hf model.architecture=<model_type>`` builds one from random weights (with its sizes,
    ``dropout`` and ``mlp_width``); else the family is only loaded from a folder."""
    dropout: tuple[str, ...] = ()
    """The config keys a built model sets to ``model=hf``'s ``dropout``."""
    mlp_width: str | None = None
    """The config key a built model sets to 4 x ``d_model`` (its MLP's width), if its config needs one."""


FAMILIES: dict[str, Family] = {}
"""Every registered family by ``model_type``, in the order registered (:func:`register_family`). A model of
another type (Mistral, Qwen2, Gemma, ...) has its blocks found at the first family's path that holds
them, and its parts from the first family whose three paths all exist in each of its blocks (Llama's, for
those); it runs whole (no resume) and reads its sizes from the config's standard names."""
RESUMES = ("positions", "rotary")
"""How a family's blocks can run from a layer's states (:attr:`Family.resume`)."""


def register_family(family: Family) -> Family:
    """Make ``family`` known by its ``model_type`` to the model wrapper, ``api.sites`` and the checks made
    before a model loads. Registering another record under a taken ``model_type`` is an error;
    registering the same one again is not."""
    taken = FAMILIES.get(family.model_type)
    if taken is not None and taken != family:
        raise ValueError(f"the {family.model_type!r} family is registered already, as {taken}")
    if family.resume is not None and (family.resume not in RESUMES or not family.final_norm):
        raise ValueError(f"resume is None or one of {', '.join(RESUMES)} (with a final_norm), not {family}")
    FAMILIES[family.model_type] = family
    return family


def family_of(config: Any) -> Family | None:
    """The registered family of a ``transformers`` config (by its ``model_type``), or None."""
    model_type = getattr(config, "model_type", None)
    return FAMILIES.get(model_type) if isinstance(model_type, str) else None


register_family(
    Family(
        "gpt2", blocks="transformer.h", components=Components("attn", "mlp", "attn.c_proj"),
        d_model="n_embd", n_layers="n_layer", n_heads="n_head", head_dim=None, max_positions="n_positions",
        resume="positions", final_norm="ln_f",
        buildable=True, dropout=("resid_pdrop", "embd_pdrop", "attn_pdrop"),
    )
)  # fmt: skip
register_family(
    Family(
        "llama", blocks="model.layers", components=Components("self_attn", "mlp", "self_attn.o_proj"),
        resume="rotary", final_norm="norm",
        buildable=True, dropout=("attention_dropout",), mlp_width="intermediate_size",
    )
)  # fmt: skip
register_family(
    Family("gpt_neox", blocks="gpt_neox.layers", components=Components("attention", "mlp", "attention.dense"))
)
register_family(Family("opt", blocks="model.decoder.layers"))  # no MLP module in its blocks: layer sites


def built_families() -> list[str]:
    """The families ``model=hf`` builds from settings (``model.architecture``): those
    :attr:`Family.buildable`.

    >>> built_families()[:2]
    ['gpt2', 'llama']
    """
    return [name for name, family in FAMILIES.items() if family.buildable]


STANDARD = Family("", blocks="")
"""The config keys of a model of no registered family: the standard names ``transformers`` maps."""


def config_value(config: Any, what: str) -> Any:
    """A size of a ``transformers`` config, ``what`` one of ``d_model``, ``n_layers``, ``n_heads`` and
    ``head_dim``: under its family's key (:class:`Family`; None where the family has none), or for a model
    of no registered family under the standard name; None where the config has no such key."""
    key = getattr(family_of(config) or STANDARD, what)
    return None if key is None else getattr(config, key, None)
