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
its parts, whether a run can start at a layer) and one :func:`register_family` call, from any module. Forward hooks reach
them all: on the block (``layer.<i>``), on the attention or MLP module's output, and for a head a forward
pre-hook on the output projection that hands over, and replaces, only that head's columns of its input.
Any module path works too (``transformer.h.1``). ``python -m alignsearch.sites <folder>`` lists a model's
sites and widths (:mod:`alignsearch.sites`; ``api.sites(model)`` from Python).

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

import contextlib
import pickle
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from alignsearch.errors import ConfigError, require_positive
from alignsearch.models.base import Intervention, SequenceModel, check_vocab_size, is_layer_site, layer_sites
from alignsearch.models.hooks import check_all_seen, first_seen, hooked, module_at, recorder

if TYPE_CHECKING:
    from transformers import PreTrainedModel

MAX_POSITIONS = 128
"""Position table size of the models built here (the tasks' sequences are at most about 45 tokens)."""


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

RESUME_TRANSFORMERS = 5
"""The ``transformers`` major version whose block signatures :meth:`HFSequenceModel.encode_from` follows
(older versions run the whole model)."""


def built_families() -> list[str]:
    """The families ``model=hf`` builds from settings (``model.architecture``): those
    :attr:`Family.buildable`.

    >>> built_families()[:2]
    ['gpt2', 'llama']
    """
    return [name for name, family in FAMILIES.items() if family.buildable]


def require_transformers():
    """The ``transformers`` package, or a one-line ConfigError saying how to get it."""
    try:
        import transformers
    except ImportError:
        raise ConfigError(
            "model", "hf", 'the transformers package: pip install -e ".[hf]" (it is an optional extra)'
        ) from None
    return transformers


LOCAL_ONLY = {"local_files_only": True, "trust_remote_code": False}
"""How every folder is loaded with ``from_pretrained``: nothing downloaded, and never the Python code a
folder may carry (``auto_map``): transformers refuses such a folder instead of asking whether to run it."""


def why_not_loaded(error: BaseException) -> str:
    """Why transformers could not load a folder, in a phrase: its message's first line, or, for a folder
    that carries its own Python code, that such code is never run."""
    text = str(error)
    if "custom code" in text or "trust_remote_code" in text:
        return "its config.json asks to run Python code the folder carries (auto_map), which alignsearch never does"
    return text.splitlines()[0] if text else type(error).__name__


def load_pretrained(path: Path, dtype: torch.dtype | None = None) -> PreTrainedModel:
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
        return transformers.AutoModelForCausalLM.from_pretrained(path, **LOCAL_ONLY, **given)
    except (ValueError, OSError) as e:
        raise ConfigError("model.path", str(path), f"a causal language model ({why_not_loaded(e)})") from None
    except pickle.UnpicklingError:  # a pytorch_model.bin that torch.load(weights_only=True) refuses
        raise ConfigError(
            "model.path",
            str(path),
            "a causal language model whose weights are tensors (model.safetensors, or a pytorch_model.bin "
            "of tensors): its weights file holds other pickled objects, which are not loaded (they could "
            "run code)",
        ) from None


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


STANDARD = Family("", blocks="")
"""The config keys of a model of no registered family: the standard names ``transformers`` maps."""


def config_value(config: Any, what: str) -> Any:
    """A size of a ``transformers`` config, ``what`` one of ``d_model``, ``n_layers``, ``n_heads`` and
    ``head_dim``: under its family's key (:class:`Family`; None where the family has none), or for a model
    of no registered family under the standard name; None where the config has no such key."""
    key = getattr(family_of(config) or STANDARD, what)
    return None if key is None else getattr(config, key, None)


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
