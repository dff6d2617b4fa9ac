"""A pretrained causal language model from a local folder, frozen, with intervention sites
(``pip install -e ".[hf]"``; ``model=lm model.path=<folder>``).

Any folder that ``transformers`` loads with ``AutoModelForCausalLM`` and ``AutoTokenizer`` (written by
``save_pretrained``; nothing is downloaded) becomes a :class:`~alignsearch.models.SequenceModel` whose
weights never change: gradients flow through it to an alignment, never into it. Its sites are those of
:class:`~alignsearch.models.hf.HFSequenceModel`: ``embedding`` (the input to the first block),
``layer.<i>`` (the residual stream after block ``i``), ``layer.<i>.attn`` and ``layer.<i>.mlp`` (the
outputs of its attention and MLP), ``layer.<i>.head.<j>`` (head ``j``'s output before the attention output
projection, head-size wide) and any module path inside the HuggingFace model (``transformer.h.1.mlp.c_fc``,
``model.layers.0``); ``lm.sites`` (or ``python -m alignsearch.sites <folder>``) lists them with their
widths::

    lm = TextLM("checkpoints/gpt2", dtype="bfloat16")
    batch = lm.tokenizer(["apple pear . how many ?", "cup . how many ?"], padding=True, return_tensors="pt")
    h = lm.activations(batch.input_ids, "layer.1", attention_mask=batch.attention_mask)  # (2, 6, d_model)

A model and tokenizer already in memory (built, trained or changed here) work the same way, without a
folder: ``TextLM.from_model(model, tokenizer)``.

With ``attention_mask`` (1 = a real token) a left-padded batch gives, at its real tokens, the activations
of the same texts unpadded (positions are counted from each row's first real token). Without one the
model reads every token: right padding is then harmless, because causal attention keeps later padding
from changing earlier positions.

In ``bfloat16`` or ``float16`` an intervention's function receives activations in that dtype, and what it
returns is cast to it by the model; an alignment kept in float32 converts on its side, e.g.
``lambda h, rows, cols: rotate(h.float()).to(h.dtype)``.

GPT-2 and Llama models can also run from their states at ``embedding`` or ``layer.<i>`` (``encode_from``, see
:mod:`alignsearch.models.hf`): an alignment computes those states once per pair, in the model's dtype,
and each training step runs only the blocks above the site.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from alignsearch.errors import ConfigError
from alignsearch.models.base import hash_weights
from alignsearch.models.hf import HFSequenceModel
from alignsearch.models.hf_load import LOCAL_ONLY, load_pretrained, require_transformers
from alignsearch.models.hf_sites import find_blocks
from alignsearch.models.wrapped import check_model_name

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""``model.dtype`` -> the torch dtype the weights are loaded in."""

TOKENIZER_VOCABULARIES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")
"""Files of which a tokenizer folder has at least one (``transformers`` would build an empty tokenizer
from a folder with none)."""

HASHED_PATTERNS = (
    "config.json",
    "*.safetensors",
    "*.bin",
    "tokenizer*",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.*",
    "merges.txt",
    "spiece.model",
)
"""The files of a model folder that :func:`folder_sha256` reads: config, weights and tokenizer."""

HASH_CHUNK_BYTES = 1 << 20


class TextLM(HFSequenceModel):
    """A frozen causal LM loaded from ``path`` in ``dtype`` (``float32``, ``bfloat16`` or ``float16``), or
    already in memory with its tokenizer (:meth:`from_model`).

    Attributes: ``tokenizer`` (the folder's; without a pad token it pads with its eos token, the files
    unchanged), ``pad_id``, ``d_model``, ``n_layers``, ``vocab_size`` (the width of the logits), ``dtype``
    and ``folder`` (None for a model given in memory). It stays in eval mode (:meth:`train` changes
    nothing) and its parameters need no gradients. ``name`` is ``lm_<folder name>``; ``settings()`` are
    the absolute path (None in memory) and the dtype.
    """

    folder: Path | None

    def __init__(self, path: str | None, dtype: str = "float32") -> None:
        super().__init__()
        transformers = require_transformers()
        if path is None:
            raise ConfigError("model.path", None, "a folder written by save_pretrained (model and tokenizer)")
        if dtype not in DTYPES:
            raise ConfigError("model.dtype", dtype, f"one of {', '.join(DTYPES)}")
        self.folder = Path(path).expanduser().resolve()
        self.dtype_name, self.dtype = dtype, DTYPES[dtype]
        self.label = self.folder.name
        if not self.folder.is_dir():
            raise ConfigError("model.path", path, "an existing folder written by save_pretrained")
        if not (self.folder / "config.json").is_file():
            raise ConfigError(
                "model.path", path, "a folder written by save_pretrained (it has no config.json)"
            )
        tokenizer = load_tokenizer(transformers, self.folder, path)
        self._freeze(load_pretrained(self.folder, self.dtype), tokenizer, "model.path", path)

    @classmethod
    def from_model(cls, model: nn.Module, tokenizer: Any, name: str | None = None) -> TextLM:
        """The causal LM ``model`` (a ``transformers`` model with an LM head, e.g. from
        ``AutoModelForCausalLM``) and its ``tokenizer``, both already in memory, as a :class:`TextLM`: the
        same sites, activations and logits as the same model saved to a folder and loaded from there.

        The model itself is wrapped, not a copy: it is put in eval mode and its parameters need no gradients.
        The tokenizer is used as it is, or, without a pad token, a copy that pads with its eos token.
        ``name`` is ``lm_<name>`` (by default ``lm_<model_type>``, ``lm_gpt2``); ``settings()`` are
        ``{"path": None, "dtype": <the weights' dtype>}``; :meth:`weights_sha256` hashes the weights and
        the tokenizer. A one-line ConfigError for another kind of model or a missing tokenizer::

            model = AutoModelForCausalLM.from_config(config)  # or trained here, or loaded and changed
            lm = TextLM.from_model(model, tokenizer)
            lm.name, lm.settings()  # 'lm_gpt2', {'path': None, 'dtype': 'float32'}
        """
        transformers = require_transformers()
        check_causal_lm(transformers, model)
        if name is not None:
            name = check_model_name(name, "name")
        self = cls.__new__(cls)
        super(TextLM, self).__init__()
        self.folder = None
        self.dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
        self.dtype_name = str(self.dtype).removeprefix("torch.")
        config: Any = model.config  # a transformers config
        self.label = name or str(config.model_type)
        self._freeze(model, padding_tokenizer(transformers, tokenizer), "tokenizer", type(tokenizer).__name__)
        return self

    def _freeze(self, lm: nn.Module, tokenizer: Any, key: str, value: Any) -> None:
        """Wrap ``lm`` with ``tokenizer``, frozen and in eval mode; ``key=value`` names the source in an error."""
        self.tokenizer = tokenizer
        self._attach(lm, value if key == "model.path" else None)
        self.vocab_size = int(self.lm.get_output_embeddings().weight.shape[0])
        if len(self.tokenizer) > self.vocab_size:
            raise ConfigError(
                key,
                value,
                f"a tokenizer of at most {self.vocab_size} tokens, the model's vocabulary "
                f"(it has {len(self.tokenizer)})",
            )
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.lm.requires_grad_(False)
        self.train(False)
        self._sha256: tuple[Any, str] | None = None

    def train(self, mode: bool = True) -> TextLM:
        """Stays in eval mode whatever ``mode`` says: the model is frozen (no dropout in a training run)."""
        return super().train(False)

    @property
    def name(self) -> str:
        return f"lm_{self.label}"

    def settings(self) -> dict[str, Any]:
        """``{"path": <the folder, absolute>, "dtype": "float32"}``; ``path`` is None for a model given in
        memory (:meth:`from_model`)."""
        return {"path": None if self.folder is None else str(self.folder), "dtype": self.dtype_name}

    def weights_sha256(self) -> str:
        """What identifies the model in a run's results: the :func:`folder_sha256` of its folder (read once,
        on the first call), or for a model given in memory a SHA-256 over its state dict (names, dtypes,
        shapes and values) and its tokenizer (:func:`tokenizer_bytes`), computed again only once a weight
        has changed (another tensor, or one written in place)."""
        if self.folder is not None:
            if self._sha256 is None:
                self._sha256 = (None, folder_sha256(self.folder))
            return self._sha256[1]
        state = tuple(
            (key, value.data_ptr(), value._version, value.dtype, tuple(value.shape))
            for key, value in self.lm.state_dict().items()
        )
        if self._sha256 is None or self._sha256[0] != state:
            digest = hashlib.sha256()
            hash_weights(digest, self.lm)
            digest.update(b"\0tokenizer\0" + tokenizer_bytes(self.tokenizer))
            self._sha256 = (state, digest.hexdigest())
        return self._sha256[1]


TEXT_MODEL = f"{TextLM.__module__}.{TextLM.__qualname__}"
"""The ``_target_`` of ``model=lm`` (``alignsearch.models.lm.TextLM``): what tells a language model's config
from a task model's."""


def check_causal_lm(transformers: Any, model: Any) -> None:
    """Nothing if ``model`` is a ``transformers`` causal LM (a model with an LM head, not an encoder-decoder)
    whose blocks :func:`~alignsearch.models.hf.find_blocks` finds, else a one-line ConfigError."""
    allowed = "a transformers causal LM (e.g. from AutoModelForCausalLM) with its tokenizer"
    if not isinstance(model, transformers.PreTrainedModel):
        raise ConfigError("model", type(model).__name__, allowed)
    if model.get_output_embeddings() is None or getattr(model.config, "is_encoder_decoder", False):
        raise ConfigError("model", type(model).__name__, f"{allowed} (it has no LM head)")
    try:
        find_blocks(model)
    except ConfigError as e:
        raise ConfigError("model", type(model).__name__, e.allowed) from None


def padding_tokenizer(transformers: Any, tokenizer: Any) -> Any:
    """``tokenizer`` if it has a pad token, else a copy padding with its eos token (the one given is left as it
    is), or a one-line ConfigError (no tokenizer, or one with neither token)."""
    if not isinstance(tokenizer, transformers.PreTrainedTokenizerBase):
        raise ConfigError(
            "tokenizer",
            type(tokenizer).__name__,
            "the model's transformers tokenizer (e.g. from AutoTokenizer.from_pretrained)",
        )
    if tokenizer.pad_token is not None:
        return tokenizer
    if tokenizer.eos_token is None:
        raise ConfigError(
            "tokenizer", type(tokenizer).__name__, "a tokenizer with a pad token or an eos token"
        )
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def tokenizer_bytes(tokenizer: Any) -> bytes:
    """What identifies a tokenizer: a fast tokenizer's definition (its vocabulary, merges, normalizer and
    pre-tokenizer, as ``tokenizers`` writes it) or a slow one's vocabulary, with its special tokens."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # less the padding and truncation a call leaves set (not what the tokens are)
        fields = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("padding", "truncation")}
        definition = json.dumps(fields, sort_keys=True)
    else:
        definition = json.dumps(sorted(tokenizer.get_vocab().items()))
    special = json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str)
    return f"{definition}\0{special}".encode()


def load_tokenizer(transformers: Any, folder: Path, path: str) -> Any:
    """The tokenizer saved in ``folder``, padding with its eos token if it has no pad token, or a one-line
    ConfigError naming ``path``."""
    if not any((folder / name).is_file() for name in TOKENIZER_VOCABULARIES):
        raise ConfigError(
            "model.path",
            path,
            f"a folder with a saved tokenizer (one of {', '.join(TOKENIZER_VOCABULARIES)})",
        )
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, **LOCAL_ONLY)
    except (ValueError, OSError, TypeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(
            "model.path", path, f"a folder with a tokenizer transformers can load ({first})"
        ) from None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError("model.path", path, "a tokenizer with a pad token or an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def folder_sha256(folder: str | Path) -> str:
    """A SHA-256 over a model folder's config, weight and tokenizer files (:data:`HASHED_PATTERNS`), each
    one's name, size and bytes in sorted name order: the same for a copy of the folder elsewhere, another
    once any of these files changes.

        folder_sha256("checkpoints/gpt2")  # '5f1c...' (64 hex digits)
    """
    folder = Path(folder)
    names = sorted({p.name for pattern in HASHED_PATTERNS for p in folder.glob(pattern) if p.is_file()})
    digest = hashlib.sha256()
    for name in names:
        file = folder / name
        digest.update(f"{name}\0{file.stat().st_size}\0".encode())
        with file.open("rb") as f:
            while chunk := f.read(HASH_CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()
