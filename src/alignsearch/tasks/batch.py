"""A batch of task sequences with the variables that generated them."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class SequenceBatch:
    """Right-padded token sequences, their task masks and their true generative variables.

    ``ids[b]`` is ``B t_1 ... t_n E P P ...``; ``task_mask[b, p]`` is True where token ``p`` is a task
    token (decided by the task's program, hence predictable and checked: responses and EOS).
    ``variables`` hold per-sequence integers such as ``obj_count`` (the number of objects shown).

    >>> b = SequenceBatch(torch.tensor([[1, 3, 7, 6, 2, 0]]), torch.tensor([[0, 0, 0, 1, 1, 0]]).bool(),
    ...                   {"obj_count": torch.tensor([1])})
    >>> b.lengths.tolist()
    [5]
    """

    ids: Tensor
    task_mask: Tensor
    variables: dict[str, Tensor] = field(default_factory=dict)
    pad_id: int = 0

    def __len__(self) -> int:
        return self.ids.shape[0]

    @property
    def lengths(self) -> Tensor:
        """Number of tokens before padding, BOS and EOS included."""
        return (self.ids != self.pad_id).sum(1)

    def __getitem__(self, index: Tensor | slice) -> SequenceBatch:
        return SequenceBatch(
            self.ids[index],
            self.task_mask[index],
            {k: v[index] for k, v in self.variables.items()},
            self.pad_id,
        )

    @staticmethod
    def concat(batches: list[SequenceBatch]) -> SequenceBatch:
        """Stack batches, padding them to the longest."""
        length = max(b.ids.shape[1] for b in batches)
        pad_id = batches[0].pad_id

        def pad(t: Tensor, value: int | bool) -> Tensor:
            return torch.nn.functional.pad(t, (0, length - t.shape[1]), value=value)

        return SequenceBatch(
            torch.cat([pad(b.ids, pad_id) for b in batches]),
            torch.cat([pad(b.task_mask, False) for b in batches]),
            {k: torch.cat([b.variables[k] for b in batches]) for k in batches[0].variables},
            pad_id,
        )
