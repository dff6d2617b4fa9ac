"""The contract every task model keeps: named intervention sites and ``forward(ids, intervention)``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from alignsearch.configurable import Configurable
from alignsearch.errors import ConfigError

InterventionFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``fn(h, rows, cols) -> h'``: new vectors for the activations ``h`` (n, width) found at ``(rows, cols)``."""


@dataclass
class Intervention:
    """Replace a site's activations at chosen positions while the model runs.

    ``mask`` (batch, length) marks the positions; ``fn`` receives the activations there, stacked as
    (n, width), with their row and column indices, and returns what the model should carry on with.
    An intervention at position ``p`` changes the state the model holds after reading token ``p``.
    ``lengths`` (batch,), if given, says that only each row's first ``lengths[r]`` outputs will be read:
    a model may skip the rest (and leave zeros there).

    >>> keep = Intervention("layer.0", torch.zeros(2, 5, dtype=torch.bool), lambda h, rows, cols: h)
    """

    site: str
    mask: Tensor
    fn: InterventionFn
    lengths: Tensor | None = None

    def apply(self, h: Tensor) -> Tensor:
        """Apply to a whole (batch, length, width) tensor at once."""
        rows, cols = self.mask.nonzero(as_tuple=True)
        if rows.numel() == 0:
            return h
        return h.index_put((rows, cols), self.fn(h[rows, cols], rows, cols))

    def apply_step(self, h: Tensor, t: int) -> Tensor:
        """Apply to the (batch, width) state of time step ``t``."""
        rows = self.mask[:, t].nonzero(as_tuple=True)[0]
        if rows.numel() == 0:
            return h
        return h.index_put((rows,), self.fn(h[rows], rows, torch.full_like(rows, t)))


class SequenceModel(Configurable, nn.Module):
    """A next-token model over token ids with named sites where activations can be read or replaced.

    A subclass implements :meth:`encode` and :meth:`readout`. Its *named sites* (:attr:`sites`) are the
    ones its own code handles: ``encode`` applies an intervention there and :meth:`activations` reads
    them (the built-in models: ``embedding`` and ``layer.0`` ... ``layer.{n_layers-1}``, each layer's
    output state, see :func:`layer_sites`). The base class names none, so a model that implements only
    ``encode`` and ``readout`` offers no site it would silently ignore; any of its modules is still a
    site by module path (``site=rnn``, through a forward hook: :mod:`alignsearch.models.hooks`).

    ``settings()`` are the constructor's arguments but ``vocab_size`` (:class:`Configurable`): what
    names the model in the zoo.
    """

    settings_exclude = ("vocab_size",)

    d_model: int
    n_layers: int

    @property
    def sites(self) -> dict[str, int]:
        """Site name -> width of its activation vectors, for the sites this model's code handles."""
        return {}

    def forward(self, ids: Tensor, intervention: Intervention | None = None) -> Tensor:
        """Logits (batch, length, vocab) for the next token after each position of ``ids``."""
        return self.readout(self.encode(ids, intervention))

    def encode(self, ids: Tensor, intervention: Intervention | None = None) -> Tensor:
        """The final hidden states (batch, length, hidden) that :meth:`readout` turns into logits.

        Split from :meth:`forward` so that training can read out only the positions it scores.
        ``intervention`` is at one of :attr:`sites` (module paths are applied by hooks around this call).
        """
        raise NotImplementedError

    def readout(self, hidden: Tensor) -> Tensor:
        """Logits from final hidden states (any leading shape)."""
        raise NotImplementedError

    def activations(self, ids: Tensor, site: str) -> Tensor:
        """The (batch, length, width) activations of ``site`` (one of :attr:`sites`) while reading ``ids``."""
        raise NotImplementedError

    def check_site(self, site: str) -> int:
        """The site's layer index (-1 for the embedding), or a ConfigError listing the sites."""
        if not self.sites:
            raise ConfigError("site", site, f"a module path (the {self.name} has no named sites)")
        if site not in self.sites:
            raise ConfigError("site", site, f"one of {', '.join(self.sites)}")
        return -1 if site == "embedding" else int(site.split(".")[1])

    naming_keys: tuple[str, ...] = ()
    """Settings already part of :attr:`name` (left out of the zoo entry's name)."""

    @property
    def name(self) -> str:
        return type(self).__name__.lower()


def layer_sites(width: int, n_layers: int) -> dict[str, int]:
    """The named sites of a stack of layers: ``embedding`` and each layer's output, all ``width`` wide.

    >>> layer_sites(16, 2)
    {'embedding': 16, 'layer.0': 16, 'layer.1': 16}
    """
    return {"embedding": width, **{f"layer.{i}": width for i in range(n_layers)}}


def is_layer_site(site: str) -> bool:
    """Whether ``site`` names a whole state of the model: ``embedding`` or ``layer.<i>`` (a layer's output),
    not a part inside a layer (``layer.<i>.attn``, ``layer.<i>.head.<j>``) or a module path.

    >>> is_layer_site("layer.2"), is_layer_site("embedding"), is_layer_site("layer.2.mlp")
    (True, True, False)
    """
    return site == "embedding" or (site.startswith("layer.") and site[6:].isdigit())


def capture(store: list[Tensor]) -> InterventionFn:
    """An intervention function that records activations and leaves them unchanged."""

    def fn(h: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
        store.append(h.detach())
        return h

    return fn


def check_vocab_size(vocab_size: int) -> int:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 2:
        raise ConfigError("vocab_size", vocab_size, "an integer >= 2 (taken from the task's vocabulary)")
    return vocab_size


def check_dropout(dropout: float) -> float:
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ConfigError("dropout", dropout, "a probability in [0, 1)")
    return float(dropout)


def full_mask(ids: Tensor) -> Tensor:
    return torch.ones_like(ids, dtype=torch.bool)


def hash_weights(digest: hashlib._Hash, model: nn.Module) -> None:
    """Feed ``model``'s state dict to ``digest``: each entry's name, dtype and shape, then its bytes, in the
    state dict's order (what :func:`weights_sha256` hashes)."""
    for key, value in model.state_dict().items():
        tensor = value.detach().cpu().contiguous().reshape(-1)  # 0-d buffers (a step count) as 1 item
        digest.update(f"{key}:{tensor.dtype}:{tuple(value.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")


def weights_sha256(model: nn.Module) -> str:
    """A SHA-256 over a model's state dict (names, dtypes, shapes and values): the same for the same weights
    wherever they are, another once any value changes.

    >>> len(weights_sha256(nn.Linear(2, 2)))
    64
    """
    digest = hashlib.sha256()
    hash_weights(digest, model)
    return digest.hexdigest()
