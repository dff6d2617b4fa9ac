"""``AlignmentModule``: learn alignment functions on frozen task models with interchange interventions."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from alignsearch.alignment import BoundlessLayout, Interchange
from alignsearch.models import Intervention, SequenceModel
from alignsearch.training.alignment_data import PairBatch, Track
from alignsearch.training.metrics import TokenAccuracy, TrialAccuracy


def intervention_mask(batch: PairBatch, length: int, stepwise: bool) -> Tensor:
    """Where to intervene: the position ``pos`` of each row (stepwise: every position ``0..pos``)."""
    cols = torch.arange(length, device=batch["pos"].device)[None, :]
    pos = batch["pos"][:, None]
    return cols <= pos if stepwise else cols == pos


class AlignmentModule(L.LightningModule):
    """Trains an :class:`Interchange` so that swapping a variable's subspace from a source run into a target
    run makes the (frozen) target model produce the counterfactual sequence of the causal model.

    Loss: cross-entropy on the task tokens of the counterfactual sequence (responses and EOS). The demo
    tokens and the trigger that follow an intervention are the base's own random draws: no model can
    predict them, so they are left out (the published code scored them, adding a loss floor that
    carries no signal about the variable). Metrics per track and evaluation split: ``iia`` (the share of
    pairs whose every task token is right; teacher-forced, which equals free-running here because each
    fed-back token is itself checked) and ``token_iia`` (the share of task tokens right, teacher-forced).
    """

    def __init__(
        self,
        models: list[SequenceModel],
        sites: list[str],
        interchange: Interchange,
        tracks: list[Track],
        eval_splits: tuple[str, ...] = ("val", "heldout"),
        stepwise: bool = False,
        lr: float = 1e-2,
        warmup_steps: int = 20,
        max_steps: int = 1000,
        min_lr_ratio: float = 0.1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["models", "interchange", "tracks", "sites"])
        self.task_models = nn.ModuleList(models).requires_grad_(False).eval()
        self.sites, self.interchange, self.tracks = sites, interchange, tracks
        self.stepwise, self.eval_splits = stepwise, tuple(eval_splits)
        self.metrics = nn.ModuleDict(
            {
                split: nn.ModuleDict(
                    {
                        _key(t): nn.ModuleDict({"iia": TrialAccuracy(), "token_iia": TokenAccuracy()})
                        for t in tracks
                    }
                )
                for split in self.eval_splits
            }
        )
        self.history: list[dict[str, Any]] = []

    def train(self, mode: bool = True) -> AlignmentModule:
        """Only the alignment trains: the task models stay in eval mode (no dropout) throughout."""
        super().train(mode)
        self.task_models.eval()
        return self

    # -- running a track ----------------------------------------------------------------------------------
    def run(self, track: Track, batch: PairBatch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(loss, predictions, targets, task mask) of the intervened target model on ``batch``."""
        model = self.task_models[track.target]
        ids = batch["ids"]
        inputs, targets, task = ids[:, :-1], ids[:, 1:], batch["task_mask"][:, 1:]
        src = batch["src"]

        def swap(h: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
            h_s = src[rows, cols] if self.stepwise else src[rows]
            return self.interchange(h, h_s, track.variable, target=track.target, source=track.source)

        mask = intervention_mask(batch, inputs.shape[1], self.stepwise)
        with parametrize.cached():  # compute parametrized matrices (e.g. the rotation) once per batch
            hidden = model.encode(inputs, Intervention(self.sites[track.target], mask, swap))
        logits = model.readout(hidden[task])
        loss = F.cross_entropy(logits, targets[task]) if task.any() else logits.sum() * 0
        preds = targets.clone()
        preds[task] = logits.argmax(-1)
        return loss, preds, targets, task

    def training_step(self, batch: dict[str, PairBatch], batch_idx: int) -> Tensor:
        layout = self.interchange.layout
        if isinstance(layout, BoundlessLayout):
            layout.set_progress(self.global_step / max(self.hparams.max_steps, 1))
        trained = [t for t in self.tracks if t.trained]
        total = 0.0
        for track in trained:
            loss, *_ = self.run(track, batch[track.name])
            total = total + loss / len(trained)
            self.log(f"train/loss/{track.name}", loss, batch_size=len(batch[track.name]["ids"]))
        total = total + layout.penalty()
        self.log("train/loss", total, prog_bar=True, batch_size=1)
        return total

    def validation_step(self, batch: dict[str, PairBatch], batch_idx: int, dataloader_idx: int = 0) -> None:
        split = self.eval_splits[dataloader_idx]
        for track in self.tracks:
            _, preds, targets, task = self.run(track, batch[track.name])
            for metric in self.metrics[split][_key(track)].values():
                metric.update(preds, targets, task)

    def on_validation_epoch_end(self) -> None:
        """Log every track's metrics, their summaries over trained tracks, and keep them in the history."""
        values = self.compute_metrics(reset=True)
        step = self.global_step
        for split, per_track in values.items():
            for name, metrics in per_track.items():
                for metric, value in metrics.items():
                    self.log(f"{split}/{metric}/{name}", value)
                track = next(t for t in self.tracks if t.name == name)
                self.history.append(
                    {
                        "step": step,
                        "split": split,
                        "source": track.source,
                        "target": track.target,
                        "variable": track.variable,
                        "trained": track.trained,
                        **metrics,
                    }
                )
            trained = [per_track[t.name]["iia"] for t in self.tracks if t.trained]
            if trained:
                self.log(f"{split}/iia_mean", sum(trained) / len(trained), prog_bar=split == "val")
                self.log(f"{split}/iia_min", min(trained))

    def compute_metrics(self, reset: bool = False) -> dict[str, dict[str, dict[str, float]]]:
        out: dict[str, dict[str, dict[str, float]]] = {}
        for split in self.eval_splits:
            out[split] = {}
            for track in self.tracks:
                metrics = self.metrics[split][_key(track)]
                if int(metrics["iia"].total) == 0:
                    continue
                out[split][track.name] = {name: float(m.compute()) for name, m in metrics.items()}
                if reset:
                    for m in metrics.values():
                        m.reset()
        return out

    @torch.no_grad()
    def evaluate(self, tracks: dict[str, PairBatch], batch_size: int = 1000) -> dict[str, dict[str, float]]:
        """IIA and token IIA of every track on the given pairs (outside the Lightning loop)."""
        from alignsearch.training.alignment_data import eval_batches

        was_training = self.training
        self.eval()
        iia, tok = {}, {}
        for track in self.tracks:
            iia[track.name], tok[track.name] = TrialAccuracy(), TokenAccuracy()
        for batch in eval_batches(tracks, batch_size):
            for track in self.tracks:
                _, preds, targets, task = self.run(track, batch[track.name])
                iia[track.name].update(preds, targets, task)
                tok[track.name].update(preds, targets, task)
        self.train(was_training)
        return {
            name: {"iia": float(iia[name].compute()), "token_iia": float(tok[name].compute())} for name in iia
        }

    # -- optimisation ----------------------------------------------------------------------------------------
    def configure_optimizers(self):
        opt = torch.optim.Adam(self.interchange.parameters(), lr=self.hparams.lr)
        warmup, total, floor = self.hparams.warmup_steps, self.hparams.max_steps, self.hparams.min_lr_ratio

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        schedule = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["history"] = self.history

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = checkpoint.get("history", [])


def _key(track: Track) -> str:
    """A ModuleDict key for a track (no dots allowed there)."""
    return track.name.replace(".", "_")
