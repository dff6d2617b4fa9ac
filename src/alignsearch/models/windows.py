"""Ragged runs of a fused recurrent kernel: one window of columns per row, packed without padding.

An intervened recurrent run reads each row only around its own intervened position. Padding every row to
the full length would make each step of the run (and its backward pass) touch a whole
(batch, length, width) tensor; packing the windows keeps every tensor as small as the cells it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence


@dataclass(frozen=True)
class Windows:
    """Row ``r`` covers columns ``start[r] .. start[r] + steps[r] - 1`` of a (batch, length) grid; cells are
    ordered as a fused kernel's packed sequence (time step by time step, longest rows first).

    ``rows``, ``cols`` and ``flat`` (``row * length + col``) name the cell of each packed entry; columns
    may run past the grid's end (a window that only exists to keep a row in the batch), and such cells
    read the last column's input.

    >>> w = Windows.of(start=torch.tensor([2, 0]), steps=torch.tensor([1, 3]), length=4)
    >>> w.flat.tolist()  # cells (1, 0), (0, 2) at the first step, then (1, 1), (1, 2)
    [4, 2, 5, 6]
    """

    rows: Tensor
    cols: Tensor
    flat: Tensor
    length: int
    batch_sizes: Tensor
    sorted_indices: Tensor
    unsorted_indices: Tensor

    @classmethod
    def of(cls, start: Tensor, steps: Tensor, length: int) -> Windows:
        """Windows of ``steps`` columns (at least one: a fused kernel keeps every row) from ``start``."""
        steps = steps.clamp(min=1)
        order = torch.argsort(steps, descending=True, stable=True)
        time = torch.arange(int(steps.max()), device=steps.device)
        inside = time[:, None] < steps[order][None, :]  # (step, rank): is the rank-th longest row there
        step, rank = inside.nonzero(as_tuple=True)
        rows = order[rank]
        cols = start[rows] + step
        unsorted = torch.empty_like(order)
        unsorted[order] = torch.arange(len(order), device=order.device)
        return cls(rows, cols, rows * length + cols, length, inside.sum(1).cpu(), order, unsorted)

    def pack(self, entries: Tensor) -> PackedSequence:
        """Entries (n, ...) already in packed order, as a packed sequence for a fused kernel."""
        return PackedSequence(entries, self.batch_sizes, self.sorted_indices, self.unsorted_indices)

    def gather(self, grid: Tensor) -> Tensor:
        """The cells of a (batch, length, ...) grid that these windows cover, in packed order."""
        cols = self.cols.clamp(max=self.length - 1)
        return grid.flatten(0, 1).index_select(0, self.rows * self.length + cols)

    def take(self, other: Windows, data: Tensor) -> Tensor:
        """Entries packed in ``other`` re-laid for these windows (each cell of these must be in ``other``)."""
        where = torch.zeros(len(other.sorted_indices) * self.length, dtype=torch.long, device=data.device)
        where[other.flat] = torch.arange(len(other.flat), device=data.device)
        return data.index_select(0, where[self.flat])
