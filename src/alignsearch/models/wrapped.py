"""Any ``torch.nn.Module`` from token ids to logits as a task model, its sites given as module paths.

A module whose ``forward(ids)`` maps token ids (batch, length) to next-token logits (batch, length, vocab)
needs no other code to be aligned: :class:`ModuleModel` wraps it, and every site is a module path inside
it (``rnn``, ``blocks.1``), read and replaced through forward hooks (:mod:`alignsearch.models.hooks`)::

    class TinyNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.rnn, self.out = nn.Embedding(8, 16), nn.GRU(16, 16, batch_first=True), nn.Linear(16, 8)

        def forward(self, ids):
            return self.out(self.rnn(self.embed(ids))[0])

    model = as_sequence_model(TinyNet(), name="tiny")    # a ModuleModel named "tiny"
    hooks.site_activations(model, ids, "rnn")             # (batch, length, 16)
    model(ids, Intervention("rnn", mask, fn))             # logits with the GRU's outputs replaced at mask

The forward may also return an object with a ``.logits`` attribute (a HuggingFace model's output) or a
tuple whose first item is the logits.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import Tensor, nn

from alignsearch.errors import ConfigError
from alignsearch.models.base import Intervention, SequenceModel
from alignsearch.models.hooks import first_seen, hooked, module_at
from alignsearch.models.vocabulary import model_label

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""What a model's name may be: it is a folder name in a run's results (``multiobject/<name>/sha256-...``)."""


def check_model_name(name: Any, key: str = "name") -> str:
    """``name`` if it can name a model in a path (letters, digits, ``_ . -``), else a one-line ConfigError.

    >>> check_model_name("my_gru")
    'my_gru'
    """
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(key, name, "a name of letters, digits, _ . and - (it names a folder of results)")
    return name


def logits_of(output: Any) -> Tensor | None:
    """The logits in a module's output: the output itself, its ``.logits``, or a tuple's first item (None
    if there is no tensor there).

    >>> import torch
    >>> logits_of((torch.zeros(1, 2, 3), "cache")).shape
    torch.Size([1, 2, 3])
    """
    if isinstance(output, Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    if isinstance(output, tuple) and output and isinstance(output[0], Tensor):
        return output[0]
    return None


class ModuleModel(SequenceModel):
    """A ``torch.nn.Module`` mapping token ids (batch, length) to logits (batch, length, vocab), as a task model.

    It names no sites (:attr:`sites` is empty): a site is a module path inside the wrapped module
    (``site="rnn"``, ``site="blocks.1"``; :attr:`module_root`), and an :class:`Intervention` there replaces
    that module's output through a forward hook, in :meth:`encode` and in :func:`hooks.encode`. A hook
    changes what a module returns, not a state a recurrent layer carries on with inside itself.
    :meth:`encode` gives the logits and :meth:`readout` is the identity.

    Like a zoo model it is frozen: the wrapped module (the very object given, not a copy) is put in eval
    mode, its parameters need no gradients, and :meth:`train` leaves it in eval mode. ``name`` is the one
    given or the wrapped class's name in lower case; ``settings()`` are that name and the class's
    qualified name. The state dict is the wrapped module's under ``module.``.

    >>> import torch
    >>> model = ModuleModel(nn.Sequential(nn.Embedding(8, 4), nn.Linear(4, 8)), name="tiny")
    >>> model(torch.tensor([[1, 2, 3]])).shape, model.sites, model.name
    (torch.Size([1, 3, 8]), {}, 'tiny')
    """

    settings_exclude = ("vocab_size",)
    settings_canonical = {"module": lambda module: f"{type(module).__module__}.{type(module).__qualname__}"}

    def __init__(self, module: nn.Module, name: str | None = None) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise ConfigError("model", type(module).__name__, "a torch.nn.Module")
        if isinstance(module, SequenceModel):
            raise ConfigError(
                "model", type(module).__name__, "a module that is not a SequenceModel (use it as it is)"
            )
        self.given_name = None if name is None else check_model_name(name)
        self.module = module
        module.requires_grad_(False)
        self.train(False)

    @property
    def module_root(self) -> nn.Module:
        """Module paths are read inside the wrapped module: ``rnn``, ``blocks.1``."""
        return self.module

    @property
    def name(self) -> str:
        return self.given_name or type(self.module).__name__.lower()

    def settings(self) -> dict[str, Any]:
        """``{"module": <the wrapped class, qualified>, "name": <the model's name>}``."""
        return super().settings() | {"name": self.name}

    def train(self, mode: bool = True) -> ModuleModel:
        """Stays in eval mode whatever ``mode`` says: the model is frozen (no dropout in a training run)."""
        return super().train(False)

    def encode(self, ids: Tensor, intervention: Intervention | None = None) -> Tensor:
        """The wrapped module's logits (batch, length, vocab) for ``ids``; ``intervention`` at a module path.
        A ConfigError if the output holds no such logits."""
        if intervention is None:
            return self._logits(ids)
        handle = hooked(module_at(self, intervention.site), intervention.apply)
        try:
            return self._logits(ids)
        finally:
            handle.remove()

    def readout(self, hidden: Tensor) -> Tensor:
        """The identity: :meth:`encode` already gives logits."""
        return hidden

    def activations(self, ids: Tensor, site: str) -> Tensor:
        """The (batch, length, width) output of the module at the path ``site`` while reading ``ids``."""
        module = module_at(self, site)
        return first_seen(site, lambda fn: hooked(module, fn), lambda: self._logits(ids))

    def _logits(self, ids: Tensor) -> Tensor:
        output = self.module(ids)
        logits = logits_of(output)
        if logits is None or logits.dim() != 3 or logits.shape[:2] != ids.shape:
            got = type(output).__name__ if logits is None else f"a tensor of shape {tuple(logits.shape)}"
            raise ConfigError(
                "model",
                self.name,
                f"a module whose forward(ids) gives logits (batch, length, vocab) for ids of shape "
                f"{tuple(ids.shape)}; it gives {got}",
            )
        return logits


BATCH_FIRST = "batch-first ids (batch, length) -> logits (batch, length, vocab)"
"""What a task model must map: what :func:`check_batch_first` refuses a model for not doing."""


@torch.no_grad()
def check_batch_first(model: SequenceModel, ids: Tensor, logits: Tensor, key: str = "model") -> None:
    """A one-line ConfigError unless ``model`` reads ``ids`` batch-first: ``logits`` (its output for
    ``ids``, at least two different sequences) are ``(batch, length, vocab)`` and each sequence's logits
    are its own, the same with the batch in reverse order. A module that reads ids as (length, batch)
    (an ``nn.GRU`` without ``batch_first=True`` on the embeddings) gives logits of the right shape that mix
    the sequences of a batch, and would be aligned on nonsense.

    >>> import torch
    >>> net = nn.Sequential(nn.Embedding(8, 4), nn.Linear(4, 8))
    >>> ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    >>> check_batch_first(ModuleModel(net), ids, net(ids))
    """
    shape = tuple(logits.shape)
    if logits.dim() != 3 or shape[:2] != tuple(ids.shape):
        raise ConfigError(
            key, model_label(model), f"{BATCH_FIRST}: for ids of shape {tuple(ids.shape)} it gives {shape}"
        )
    again = model(ids.flip(0)).flip(0)
    if again.shape != logits.shape or not torch.allclose(again, logits, rtol=1e-3, atol=1e-4, equal_nan=True):
        raise ConfigError(
            key,
            model_label(model),
            f"{BATCH_FIRST}, each sequence's logits its own: its logits for a sequence change when the other "
            "sequences of the batch are reordered (does it read ids as (length, batch)? make its layers "
            "batch_first=True, or wrap it in a module whose forward(ids) takes ids (batch, length), e.g. "
            "module(ids.T).transpose(0, 1), with its site a module whose output is (batch, length, width))",
        )


def as_sequence_model(obj: Any, name: str | None = None) -> SequenceModel:
    """``obj`` as a task model: a :class:`SequenceModel` as it is (``name`` is then not used), a
    ``torch.nn.Module`` wrapped in a :class:`ModuleModel` named ``name``; anything else is a one-line
    ConfigError.

    >>> as_sequence_model(nn.Embedding(8, 8)).name
    'embedding'
    """
    if isinstance(obj, SequenceModel):
        return obj
    if isinstance(obj, nn.Module):
        return ModuleModel(obj, name)
    raise ConfigError(
        "model",
        type(obj).__name__,
        "a SequenceModel, or a torch.nn.Module whose forward(ids) maps token ids (batch, length) to logits "
        "(batch, length, vocab)",
    )
