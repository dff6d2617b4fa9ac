"""The Lightning data of alignment training: an endless seeded stream of training batches of pairs, and
fixed evaluation batches per split."""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from alignsearch.search.pairs import PairBatch, select
from alignsearch.seeding import generator


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
        return [  # each a list of batches: a map-style dataset (which the stubs do not see)
            DataLoader(eval_batches(tracks, self.eval_batch_size), batch_size=None)  # type: ignore[arg-type]
            for tracks in self.evals.values()
        ]


def eval_batches(tracks: dict[str, PairBatch], size: int) -> list[dict[str, PairBatch]]:
    """Fixed evaluation batches: each a dict of equally indexed chunks of every track."""
    n = min(len(t["ids"]) for t in tracks.values())
    return [
        {name: select(t, torch.arange(s, min(s + size, n))) for name, t in tracks.items()}
        for s in range(0, n, size)
    ]
