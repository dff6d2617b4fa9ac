"""Counterfactual pairs as tensors for alignment training, with source activations computed once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from alignsearch.models import SequenceModel, hooks
from alignsearch.seeding import generator
from alignsearch.tasks.counterfactual import CounterfactualPairs

PairBatch = dict[str, Tensor]
"""A batch of counterfactual pairs: ``ids`` (n, L) the base sequence (what the intervened model reads),
``task_mask`` (n, L) the tokens it must predict, ``pos`` (n,) where to intervene (stepwise: every
position up to it), ``src`` the source activations to swap in ((n, width), stepwise (n, P, width));
optionally ``labels`` (n, L), the token expected at each position where it is not ``ids`` itself (the
source model's own predictions, in behavioural MAS), and ``cl``/``cl_found``, counterfactual-latent
targets (per pair, or stepwise per pair and position)."""
SEQUENCE_KEYS = ("ids", "task_mask", "labels")
"""The per-position tensors of a :data:`PairBatch` (trimmed and padded together)."""


@dataclass(frozen=True)
class Track:
    """One (source model, target model, variable) combination and how it trains the alignment.

    ``behavioural``: its cross-entropy on the counterfactual sequence is part of the loss; ``latent``: its
    counterfactual-latent loss is (see :mod:`alignsearch.search.latent_targets`). A track with neither
    is only evaluated.
    """

    source: int
    target: int
    variable: str
    behavioural: bool = True
    latent: bool = False

    @property
    def trained(self) -> bool:
        return self.behavioural or self.latent

    @property
    def direction(self) -> str:
        """``"0>1"``: from model 0 into model 1."""
        return f"{self.source}>{self.target}"

    @property
    def name(self) -> str:
        """``"0>1/count"``: source model, target model, variable."""
        return f"{self.direction}/{self.variable}"

    @property
    def loss(self) -> str | None:
        """Which losses train it: ``behaviour``, ``latent``, ``both`` or None."""
        kinds = [k for k, on in (("behaviour", self.behavioural), ("latent", self.latent)) if on]
        return "both" if len(kinds) == 2 else (kinds[0] if kinds else None)


@torch.no_grad()
def pair_tensors(
    pairs: CounterfactualPairs, source_model: SequenceModel, site: str, chunk: int = 2000
) -> PairBatch:
    """The tensors of ``pairs`` plus the source model's activations at ``site`` that the swaps need.

    ``src`` is (n, width) at each source position (indywise), or (n, P, width) for the prefix positions
    ``0..P-1`` (stepwise, where position ``p`` of the base takes the source's vector at ``p``).
    """
    vectors = []
    for start in range(0, len(pairs), chunk):
        ids = pairs.source.ids[start : start + chunk]
        pos = pairs.source_pos[start : start + chunk]
        acts = hooks.site_activations(source_model, ids, site)
        if pairs.stepwise:
            prefix = int(pairs.base_pos.max()) + 1
            acts = torch.nn.functional.pad(acts, (0, 0, 0, max(0, prefix - acts.shape[1])))[:, :prefix]
            vectors.append(acts.float())
        else:
            vectors.append(acts[torch.arange(len(pos)), pos].float())
    return {"ids": pairs.ids, "task_mask": pairs.task_mask, "pos": pairs.base_pos, "src": torch.cat(vectors)}


def with_latent_targets(tensors: PairBatch, vectors: Tensor, found: Tensor) -> PairBatch:
    """``tensors`` plus the counterfactual-latent targets of its pairs (``cl``, ``cl_found``)."""
    return {**tensors, "cl": vectors, "cl_found": found}


def select(tensors: PairBatch, index: Tensor) -> PairBatch:
    """Rows ``index`` of every tensor, trimmed to the longest selected sequence."""
    out = {k: v[index] for k, v in tensors.items()}
    length = (
        int(out["task_mask"].any(0).nonzero().max()) + 1 if out["task_mask"].any() else out["ids"].shape[1]
    )
    length = max(length, int(out["pos"].max()) + 2)
    for key in SEQUENCE_KEYS:
        if key in out:
            out[key] = out[key][:, :length]
    return out


class PairStream(IterableDataset):
    """Endless training batches: batch ``k`` samples rows (with replacement) seeded by ``(seed, k)``."""

    def __init__(self, tracks: dict[str, PairBatch], batch_size: int, seed: int, start: int = 0) -> None:
        self.tracks, self.batch_size, self.seed, self.start = tracks, batch_size, seed, start

    def __iter__(self) -> Iterator[dict[str, PairBatch]]:
        step = self.start
        while True:
            g = generator(self.seed, "alignment-batches", step)
            yield {
                name: select(t, torch.randint(len(t["ids"]), (self.batch_size,), generator=g))
                for name, t in self.tracks.items()
            }
            step += 1


class PairDataModule(L.LightningDataModule):
    """Training stream over the training pairs; evaluation batches per split (``val``, ``heldout``)."""

    def __init__(
        self,
        train: dict[str, PairBatch],
        evals: dict[str, dict[str, PairBatch]],
        batch_size: int,
        eval_batch_size: int,
        seed: int,
    ) -> None:
        super().__init__()
        self.train, self.evals = train, evals
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed

    def train_dataloader(self) -> DataLoader:
        start = self.trainer.global_step if self.trainer is not None else 0
        return DataLoader(PairStream(self.train, self.batch_size, self.seed, start), batch_size=None)

    def val_dataloader(self) -> list[DataLoader]:
        return [
            DataLoader(eval_batches(tracks, self.eval_batch_size), batch_size=None)
            for tracks in self.evals.values()
        ]


def eval_batches(tracks: dict[str, PairBatch], size: int) -> list[dict[str, PairBatch]]:
    """Fixed evaluation batches: each a dict of equally indexed chunks of every track."""
    n = min(len(t["ids"]) for t in tracks.values())
    return [
        {name: select(t, torch.arange(s, min(s + size, n))) for name, t in tracks.items()}
        for s in range(0, n, size)
    ]
