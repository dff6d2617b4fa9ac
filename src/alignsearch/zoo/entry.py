"""What a zoo entry is once loaded (:class:`ZooEntry`), and what identifies a model's weights; a model
brought from elsewhere is an entry too (``origin`` :data:`OWN`), with a re-initialised copy for the
``untrained`` control."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from alignsearch.errors import ConfigError
from alignsearch.models import SequenceModel
from alignsearch.models.base import weights_sha256
from alignsearch.seeding import derive_seed


@dataclass
class ZooEntry:
    """A trained task model, its task, and what its training measured."""

    path: Path
    task: Any
    model: SequenceModel
    metrics: dict[str, Any]
    info: dict[str, Any]
    weights_sha256: str
    """Hash of the weights file the model was loaded from: what identifies the model in a run's results."""
    trusted: tuple[str, ...] = field(default=(), repr=False)
    """The modules whose classes its ``config.yaml`` could name when it was loaded (what
    :func:`initial_model` builds it again under); empty: :func:`alignsearch.components.trusted_modules`."""


OWN = "own"
"""``entry.info["origin"]`` of a model brought from elsewhere (``api.own_model``), not trained by the zoo."""


UNTRAINED_STREAM = "untrained"
"""The key of the seed a model's re-initialised copy is drawn from (:func:`reinitialised`)."""


def reinitialised(model: SequenceModel, seed: int) -> SequenceModel:
    """A copy of ``model`` whose modules' ``reset_parameters()`` ran under a seed derived from ``seed``
    (:data:`UNTRAINED_STREAM`), not ``seed`` itself: a model that is already a random draw under
    ``torch.manual_seed(seed)`` would otherwise be drawn again, weight for weight. A ConfigError if a
    weight is left as it was (a parameter of a module without ``reset_parameters``): the control would
    keep trained weights."""
    import copy

    twin = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, UNTRAINED_STREAM))
        for module in twin.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    before = dict(model.named_parameters())
    kept = [n for n, p in twin.named_parameters() if p.numel() > 1 and torch.equal(p, before[n])]
    if kept:
        raise ConfigError(
            "controls",
            "untrained",
            f"a model whose weights its modules' reset_parameters() re-initialise ({', '.join(kept[:3])} "
            "are not): give those modules a reset_parameters(), or leave this control out",
        )
    return twin.eval().requires_grad_(False)


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 over a model's state dict (names, dtypes, shapes and values): what identifies its weights."""
    return weights_sha256(model)
