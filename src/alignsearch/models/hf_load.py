"""Loading a ``transformers`` causal LM from a local folder, entirely offline: nothing is downloaded and
no Python code a folder carries is run; a folder that cannot be loaded is one ConfigError line."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from alignsearch.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel


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
