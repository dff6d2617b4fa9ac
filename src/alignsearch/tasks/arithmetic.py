"""Arithmetic: a running sum of additions and subtractions that stays within ``[min_val, max_val]``.

A sequence with 2 operations starting at 11::

    B  2  11 -  9  =  2  ,  +  15 =  17 E
    0  0  0  0  0  1  1  1  0  0  1  1  1    <- task mask: "=", the result, and "," (or EOS at the end)

The number of operations, the start value, each operator and each operand are random; "=" and the
result follow from them, and "," versus EOS follows from the number of operations left. An operator is
``-`` when the running value is at ``max_val``, ``+`` when it is at ``min_val``, else either with
probability 1/2; the operand is uniform over ``1..room``, where room keeps the result within range.
"""

from __future__ import annotations

import torch
from torch import Tensor

from alignsearch.configurable import Configurable
from alignsearch.errors import ConfigError, require_positive
from alignsearch.tasks.batch import SequenceBatch
from alignsearch.tasks.vocab import BOS, EOS, PAD, Vocabulary

PLUS, MINUS, EQUALS, COMMA = "+", "-", "=", ","
BLOCK = 5  # op operand = result ,


MAX_VALUE = 1000
"""The largest number (and number of operations) a sequence may hold: each number is a token."""


class ArithmeticTask(Configurable):
    """Sequences of ``n_ops`` additions/subtractions on numbers ``min_val..max_val``.

    ``settings()`` are the constructor's arguments (:class:`~alignsearch.configurable.Configurable`).
    """

    naming_keys: tuple[str, ...] = ()

    def __init__(self, min_val: int = 0, max_val: int = 20, min_ops: int = 1, max_ops: int = 20) -> None:
        if isinstance(min_val, bool) or not isinstance(min_val, int) or min_val < 0:
            raise ConfigError("min_val", min_val, "a non-negative integer")
        if isinstance(max_val, bool) or not isinstance(max_val, int) or not min_val < max_val <= MAX_VALUE:
            raise ConfigError("max_val", max_val, f"an integer > min_val ({min_val}) and up to {MAX_VALUE}")
        require_positive("min_ops", min_ops)
        require_positive("max_ops", max_ops, at_most=MAX_VALUE)
        if min_ops > max_ops:
            raise ConfigError("min_ops", min_ops, f"an integer <= max_ops ({max_ops})")
        self.min_val, self.max_val, self.min_ops, self.max_ops = min_val, max_val, min_ops, max_ops
        numbers = [str(i) for i in range(max(max_val, max_ops) + 1)]
        self.vocab = Vocabulary(tokens=(PAD, BOS, EOS, *numbers, PLUS, MINUS, EQUALS, COMMA))
        self._number0 = self.vocab.id("0")

    name = "arithmetic"

    def splits(self) -> tuple[str, ...]:
        return ("train",)

    def number_ids(self, values: Tensor) -> Tensor:
        return values + self._number0

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        split: str = "train",
        counts: Tensor | None = None,
    ) -> SequenceBatch:
        """Draw ``n`` sequences; ``counts`` optionally fixes each sequence's number of operations."""
        if split != "train":
            raise ValueError(f"{self.name} has only the 'train' split")
        v = self.vocab
        lo, hi = self.min_val, self.max_val
        if counts is None:
            counts = torch.randint(self.min_ops, self.max_ops + 1, (n,), generator=generator)
        n_ops = counts.long()
        n = n_ops.shape[0]
        value = torch.randint(lo, hi + 1, (n,), generator=generator)
        start = value.clone()
        blocks = torch.full((n, self.max_ops, BLOCK), v.pad, dtype=torch.long)
        for k in range(self.max_ops):  # vectorised over the batch; one pass per operation
            coin = torch.rand(n, generator=generator) < 0.5
            plus = (value == lo) | ((value < hi) & coin)
            room = torch.where(plus, hi - value, value - lo)
            operand = 1 + (torch.rand(n, generator=generator) * room).long().clamp_max(room - 1)
            value = torch.where(plus, value + operand, value - operand)
            blocks[:, k] = torch.stack(
                [
                    torch.where(plus, v.id(PLUS), v.id(MINUS)),
                    self.number_ids(operand),
                    torch.full((n,), v.id(EQUALS)),
                    self.number_ids(value),
                    torch.where(n_ops - 1 == k, v.eos, v.id(COMMA)),
                ],
                dim=1,
            )
        blocks[torch.arange(self.max_ops)[None, :] >= n_ops[:, None]] = v.pad
        head = torch.stack([torch.full((n,), v.bos), self.number_ids(n_ops), self.number_ids(start)], 1)
        length = 3 + BLOCK * int(n_ops.max())
        ids = torch.cat([head, blocks.flatten(1)], 1)[:, :length]
        block_pos = (torch.arange(length) - 3) % BLOCK
        task_mask = (torch.arange(length) >= 3) & (block_pos >= 2) & (ids != v.pad)
        return SequenceBatch(ids, task_mask, {"n_ops": n_ops, "start": start}, v.pad)
