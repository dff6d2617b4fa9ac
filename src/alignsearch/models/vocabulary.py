"""Whether a model can read a vocabulary's token ids, found before any forward pass.

A model brought from elsewhere may have been built for another vocabulary. Its input size is read off the
model itself (:func:`input_vocab_size`: a ``vocab_size`` attribute or its token embedding), and
:func:`check_reads_vocab` refuses a model that reads fewer ids than the task has tokens, naming both::

    check_reads_vocab(model, task.vocab, what=f"task {task.name}")
    # model=gru is not allowed: expected a model that reads the 8 tokens of task multiobject
    # (P B E D0 D1 D2 R T); it reads 5 token ids

A model whose size cannot be read (no embedding) passes: a caller may then run it on a small probe.
:func:`check_ids_in_vocab` checks ids given by a user (pairs) against a size.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from alignsearch.errors import ConfigError
from alignsearch.models.base import SequenceModel

SHOWN_TOKENS = 16
"""The most tokens of a vocabulary a message lists (then ``...``)."""


def input_vocab_size(model: nn.Module) -> int | None:
    """How many token ids ``model`` reads: its ``vocab_size`` attribute if that is an int, else the size of
    its input embedding (a HuggingFace model's ``get_input_embeddings()``, or the first ``nn.Embedding``
    among its modules); the same for the module it wraps (``module_root``); None if none of these is there.

    >>> input_vocab_size(nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 5)))
    5
    >>> input_vocab_size(nn.Linear(4, 5)) is None
    True
    """
    root = getattr(model, "module_root", model)
    for owner in dict.fromkeys([model, root]):
        size = getattr(owner, "vocab_size", None)
        if isinstance(size, int) and not isinstance(size, bool):
            return size
    for owner in dict.fromkeys([model, root]):
        get = getattr(owner, "get_input_embeddings", None)
        embedding = get() if callable(get) else None
        if isinstance(embedding, nn.Embedding):
            return int(embedding.num_embeddings)
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            return int(module.num_embeddings)
    return None


def model_label(model: nn.Module) -> str:
    """How a message names a model: a task model's ``name``, else its class name.

    >>> model_label(nn.GRU(4, 4))
    'GRU'
    """
    return model.name if isinstance(model, SequenceModel) else type(model).__name__


def shown_tokens(tokens: tuple[str, ...] | list[str]) -> str:
    """A vocabulary's tokens for a message: the first :data:`SHOWN_TOKENS`, then ``...``.

    >>> shown_tokens(("P", "B", "E"))
    'P B E'
    """
    head = " ".join(str(t) for t in tokens[:SHOWN_TOKENS])
    return head + ("..." if len(tokens) > SHOWN_TOKENS else "")


def check_reads_vocab(
    model: nn.Module,
    vocab: Any,
    key: str = "model",
    what: str = "the task",  # vocab: tokens and size
) -> int | None:
    """The number of token ids ``model`` reads (:func:`input_vocab_size`; None if it cannot be told), or a
    one-line ConfigError if that is fewer than ``vocab`` has tokens. ``what`` names the vocabulary in the
    message (``"task multiobject"``). Nothing runs the model.

    >>> from alignsearch.tasks import numeric_vocabulary
    >>> check_reads_vocab(nn.Embedding(5, 4), numeric_vocabulary("multi"), what="task multiobject")
    Traceback (most recent call last):
    ...
    alignsearch.errors.ConfigError: model=Embedding is not allowed: expected a model that reads the 8 tokens of task multiobject (P B E D0 D1 D2 R T); it reads 5 token ids
    """
    size = input_vocab_size(model)
    if size is not None and size < vocab.size:
        raise ConfigError(
            key,
            model_label(model),
            f"a model that reads the {vocab.size} tokens of {what} ({shown_tokens(vocab.tokens)}); "
            f"it reads {size} token ids",
        )
    return size


def check_ids_in_vocab(ids: Tensor, size: int | None, key: str = "ids", what: str = "the model") -> None:
    """A one-line ConfigError if a token id in ``ids`` is outside ``[0, size)``, naming the largest (or a
    negative) id and ``size``; nothing to check if ``size`` is None (unknown) or ``ids`` is empty.

    >>> import torch
    >>> check_ids_in_vocab(torch.tensor([[1, 9, 3]]), 8, key="pairs")
    Traceback (most recent call last):
    ...
    alignsearch.errors.ConfigError: pairs=token id 9 is not allowed: expected token ids in [0, 8), the ids the model reads (the largest given is 9)
    """
    if size is None or ids.numel() == 0:
        return
    largest, smallest = int(ids.max()), int(ids.min())
    if largest < size and smallest >= 0:
        return
    bad, which = (largest, "largest") if largest >= size else (smallest, "smallest")
    raise ConfigError(
        key,
        f"token id {bad}",
        f"token ids in [0, {size}), the ids {what} reads (the {which} given is {bad})",
    )
