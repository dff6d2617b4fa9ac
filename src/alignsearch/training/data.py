"""Task data for Lightning: an endless, resumable training stream and fixed evaluation sets."""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from alignsearch.errors import require_positive
from alignsearch.seeding import generator
from alignsearch.tasks import SequenceBatch

Batch = dict[str, Tensor]


def as_batch(seqs: SequenceBatch) -> Batch:
    return {"ids": seqs.ids, "task_mask": seqs.task_mask}


def chunks(seqs: SequenceBatch, size: int) -> list[Batch]:
    """Split into batches of ``size``, each trimmed to its own longest sequence."""
    out = []
    for start in range(0, len(seqs), size):
        part = seqs[start : start + size]
        length = int(part.lengths.max())
        out.append({"ids": part.ids[:, :length], "task_mask": part.task_mask[:, :length]})
    return out


class TrainingStream(IterableDataset):
    """Fresh training batches forever; batch ``k`` is drawn from a generator seeded by ``(seed, k)``.

    Starting at ``start`` (the trainer's global step on resume) replays exactly the batches an
    uninterrupted run would have seen.
    """

    def __init__(self, task, batch_size: int, seed: int, start: int = 0) -> None:
        self.task, self.batch_size, self.seed, self.start = task, batch_size, seed, start

    def __iter__(self) -> Iterator[Batch]:
        step = self.start
        while True:
            yield as_batch(self.task.sample(self.batch_size, generator(self.seed, "train", step)))
            step += 1


class TaskDataModule(L.LightningDataModule):
    """Training stream plus evaluation sets: ``val`` (training counts) and ``heldout`` (held-out counts).

    The evaluation sets are drawn once from their own seeded streams, so they never share a generator
    with the training data.
    """

    def __init__(
        self,
        task,
        seed: int,
        batch_size: int = 64,
        n_val: int = 1000,
        n_heldout: int = 400,
        eval_batch_size: int = 1000,
    ) -> None:
        super().__init__()
        self.task, self.seed = task, seed
        self.batch_size = require_positive("training.batch_size", batch_size)
        self.n_val = require_positive("training.n_val", n_val)
        self.n_heldout = require_positive("training.n_heldout", n_heldout)
        self.eval_batch_size = require_positive("training.eval_batch_size", eval_batch_size)

    @property
    def eval_splits(self) -> tuple[str, ...]:
        """``val`` and, when the task holds counts out, ``heldout``."""
        return tuple("val" if s == "train" else s for s in self.task.splits())

    def eval_set(self, split: str) -> SequenceBatch:
        n = self.n_val if split == "val" else self.n_heldout
        return self.task.sample(
            n, generator(self.seed, "eval", split), split="train" if split == "val" else split
        )

    def train_dataloader(self) -> DataLoader:
        start = self.trainer.global_step if self.trainer is not None else 0
        return DataLoader(TrainingStream(self.task, self.batch_size, self.seed, start), batch_size=None)

    def val_dataloader(self) -> list[DataLoader]:
        return [  # each a list of batches: a map-style dataset (which the stubs do not see)
            DataLoader(chunks(self.eval_set(s), self.eval_batch_size), batch_size=None)  # type: ignore[arg-type]
            for s in self.eval_splits
        ]
