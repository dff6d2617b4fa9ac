"""Accuracy metrics over task tokens (torchmetrics, so they accumulate correctly across batches)."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class TrialAccuracy(Metric):
    """Fraction of sequences whose every task token is predicted exactly.

    ``update(preds, targets, task_mask)`` with (batch, length) tensors; positions outside the task mask do
    not count. A sequence without task tokens counts as right.
    """

    higher_is_better = True
    full_state_update = False
    correct: Tensor  # states: add_state sets them
    total: Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: Tensor, targets: Tensor, task_mask: Tensor) -> None:
        right = ((preds == targets) | ~task_mask).all(dim=1)
        self.correct += right.sum()
        self.total += right.numel()

    def compute(self) -> Tensor:
        return self.correct.float() / self.total.clamp_min(1)


class TokenAccuracy(Metric):
    """Fraction of task tokens predicted exactly, pooled over all sequences (teacher-forced)."""

    higher_is_better = True
    full_state_update = False
    correct: Tensor  # states: add_state sets them
    total: Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: Tensor, targets: Tensor, task_mask: Tensor) -> None:
        self.correct += ((preds == targets) & task_mask).sum()
        self.total += task_mask.sum()

    def compute(self) -> Tensor:
        return self.correct.float() / self.total.clamp_min(1)


@torch.no_grad()
def task_accuracy(model, task, n: int, generator: torch.Generator, batch_size: int = 1000) -> float:
    """Trial accuracy of ``model`` on ``n`` fresh sequences of ``task`` (training counts)."""
    metric = TrialAccuracy()
    was_training = model.training
    model.eval()
    for start in range(0, n, batch_size):
        seqs = task.sample(min(batch_size, n - start), generator)
        logits = model(seqs.ids[:, :-1])
        metric.update(logits.argmax(-1), seqs.ids[:, 1:], seqs.task_mask[:, 1:])
    model.train(was_training)
    return float(metric.compute())
