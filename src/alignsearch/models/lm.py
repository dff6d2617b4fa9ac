"""A pretrained causal language model from a local folder, frozen, with intervention sites
(``pip install -e ".[hf]"``; ``model=lm model.path=<folder>``).

Any folder that ``transformers`` loads with ``AutoModelForCausalLM`` and ``AutoTokenizer`` (written by
``save_pretrained``; nothing is downloaded) becomes a :class:`~alignsearch.models.SequenceModel` whose
weights never change: gradients flow through it to an alignment, never into it. Its sites are those of
:class:`~alignsearch.models.hf.HFSequenceModel`: ``embedding`` (the input to the first block),
``layer.<i>`` (the residual stream after block ``i``) and any module path inside the HuggingFace model
(``transformer.h.1.mlp``, ``model.layers.0``)::

    lm = TextLM("checkpoints/gpt2", dtype="bfloat16")
    batch = lm.tokenizer(["apple pear . how many ?", "cup . how many ?"], padding=True, return_tensors="pt")
    h = lm.activations(batch.input_ids, "layer.1", attention_mask=batch.attention_mask)  # (2, 6, d_model)

With ``attention_mask`` (1 = a real token) a left-padded batch gives, at its real tokens, the activations
of the same texts unpadded (positions are counted from each row's first real token). Without one the
model reads every token: right padding is then harmless, because causal attention keeps later padding
from changing earlier positions.

In ``bfloat16`` or ``float16`` an intervention's function receives activations in that dtype, and what it
returns is cast to it by the model; an alignment kept in float32 converts on its side, e.g.
``lambda h, rows, cols: rotate(h.float()).to(h.dtype)``.

GPT-2 and Llama models can also run from their states at a named site (``encode_from``, see
:mod:`alignsearch.models.hf`): an alignment computes those states once per pair, in the model's dtype,
and each training step runs only the blocks above the site.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from alignsearch.errors import ConfigError
from alignsearch.models.hf import HFSequenceModel, load_pretrained, require_transformers

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
    """A frozen causal LM loaded from ``path`` in ``dtype`` (``float32``, ``bfloat16`` or ``float16``).

    Attributes: ``tokenizer`` (the folder's; without a pad token it pads with its eos token, the files
    unchanged), ``pad_id``, ``d_model``, ``n_layers``, ``vocab_size`` (the width of the logits) and
    ``dtype``. It stays in eval mode (:meth:`train` changes nothing) and its parameters need no gradients.
    ``name`` is ``lm_<folder name>``; ``settings()`` are the absolute path and the dtype.
    """

    def __init__(self, path: str, dtype: str = "float32") -> None:
        super().__init__()
        transformers = require_transformers()
        if path is None:
            raise ConfigError("model.path", None, "a folder written by save_pretrained (model and tokenizer)")
        if dtype not in DTYPES:
            raise ConfigError("model.dtype", dtype, f"one of {', '.join(DTYPES)}")
        self.folder = Path(path).expanduser().resolve()
        self.dtype_name, self.dtype = dtype, DTYPES[dtype]
        if not self.folder.is_dir():
            raise ConfigError("model.path", path, "an existing folder written by save_pretrained")
        if not (self.folder / "config.json").is_file():
            raise ConfigError(
                "model.path", path, "a folder written by save_pretrained (it has no config.json)"
            )
        self.tokenizer = load_tokenizer(transformers, self.folder, path)
        self._attach(load_pretrained(self.folder, self.dtype), path)
        self.vocab_size = int(self.lm.get_output_embeddings().weight.shape[0])
        if len(self.tokenizer) > self.vocab_size:
            raise ConfigError(
                "model.path",
                path,
                f"a tokenizer of at most {self.vocab_size} tokens, the model's vocabulary "
                f"(it has {len(self.tokenizer)})",
            )
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.lm.requires_grad_(False)
        self.train(False)
        self._sha256: str | None = None

    def train(self, mode: bool = True) -> TextLM:
        """Stays in eval mode whatever ``mode`` says: the model is frozen (no dropout in a training run)."""
        return super().train(False)

    @property
    def name(self) -> str:
        return f"lm_{self.folder.name}"

    def settings(self) -> dict[str, Any]:
        """``{"path": <the folder, absolute>, "dtype": "float32"}``."""
        return {"path": str(self.folder), "dtype": self.dtype_name}

    def weights_sha256(self) -> str:
        """The :func:`folder_sha256` of the folder (read once, on the first call): what identifies the model
        in a run's results."""
        if self._sha256 is None:
            self._sha256 = folder_sha256(self.folder)
        return self._sha256


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
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
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
