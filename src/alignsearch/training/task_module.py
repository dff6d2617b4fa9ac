"""``TaskModelModule``: next-token training of a sequence model on a task."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import lightning as L
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics import Metric

from alignsearch.engine.metrics import TokenAccuracy, TrialAccuracy
from alignsearch.errors import ConfigError
from alignsearch.models import SequenceModel
from alignsearch.settings import TrainingSettings
from alignsearch.tasks import Vocabulary

LOSS_POSITIONS = ("task", "all")


class TaskModelModule(L.LightningModule):
    """Trains ``model`` to predict each next token.

    Which positions the cross-entropy covers (``loss_on``):

    * ``task`` (default): only the task tokens, i.e. the responses and the EOS. The demo tokens and the
      trigger are random draws of the environment; no model can predict them, and fitting their
      distribution teaches nothing about numbers.
    * ``all``: every non-padding position, as in the published code (its loss floor is then about
      0.64 nats per token on MultiObject).

    Metrics, on every evaluation split (``val``: training counts; ``heldout``: held-out counts):
    ``token_acc`` (task tokens right, teacher-forced) and ``trial_acc`` (sequences whose every task token
    is right). Every fed-back task token is itself checked, so trial accuracy teacher-forced equals trial
    accuracy free-running.
    """

    def __init__(
        self,
        model: SequenceModel,
        vocab: Vocabulary,
        eval_splits: tuple[str, ...] = ("val", "heldout"),
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 50,
        loss_on: str = "task",
    ) -> None:
        super().__init__()
        if loss_on not in LOSS_POSITIONS:
            raise ConfigError("training.loss_on", loss_on, f"one of {', '.join(LOSS_POSITIONS)}")
        if not lr > 0:
            raise ConfigError("training.lr", lr, "a positive learning rate")
        if warmup_steps < 0:
            raise ConfigError("training.warmup_steps", warmup_steps, "a non-negative integer")
        self.save_hyperparameters(ignore=["model", "vocab"])
        self.model, self.vocab = model, vocab
        self.eval_splits = tuple(eval_splits)
        self.eval_metrics = nn.ModuleDict(
            {
                s: nn.ModuleDict({"token_acc": TokenAccuracy(), "trial_acc": TrialAccuracy()})
                for s in self.eval_splits
            }
        )

    def _shifted(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Inputs ``ids[:, :-1]``, targets ``ids[:, 1:]`` and the task mask of the targets."""
        ids = batch["ids"]
        return ids[:, :-1], ids[:, 1:], batch["task_mask"][:, 1:]

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        inputs, targets, task_mask = self._shifted(batch)
        counted = task_mask if self.hparams["loss_on"] == "task" else targets != self.vocab.pad
        logits = self.model.readout(self.model.encode(inputs)[counted])  # read out only the scored positions
        loss = F.cross_entropy(logits, targets[counted])
        self.log("train/loss", loss, prog_bar=True, batch_size=inputs.shape[0])
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        split = self.eval_splits[dataloader_idx]
        inputs, targets, task_mask = self._shifted(batch)
        preds = self.model(inputs).argmax(-1)
        metrics = cast(Mapping[str, Metric], self.eval_metrics[split])  # a ModuleDict of metrics
        for metric in metrics.values():
            metric.update(preds, targets, task_mask)
        self.log_dict(
            {f"{split}/{name}": m for name, m in metrics.items()},
            add_dataloader_idx=False,
            prog_bar=split == "val",
            batch_size=inputs.shape[0],
        )

    def configure_optimizers(self):
        opt = torch.optim.AdamW(
            self.model.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        warmup = max(self.hparams.warmup_steps, 1)
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def check_training_settings(settings) -> None:
    """Every training setting, checked (see :class:`alignsearch.settings.TrainingSettings`)."""
    TrainingSettings.parse(settings)
