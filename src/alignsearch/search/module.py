"""``AlignmentModule``: learn alignment functions on frozen task models with interchange interventions."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import lightning as L
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils import parametrize
from torch.optim.lr_scheduler import LRScheduler
from torchmetrics import MeanMetric, Metric

from alignsearch.alignment import Interchange
from alignsearch.engine.metrics import TokenAccuracy, TrialAccuracy
from alignsearch.intervals import bootstrap_share, wilson
from alignsearch.models import Intervention, SequenceModel, hooks
from alignsearch.search.datamodule import eval_batches
from alignsearch.search.divergence import divergence
from alignsearch.search.latent_targets import histogram_divergence, latent_loss
from alignsearch.search.pairs import BASE, PairBatch, Track, split_rows
from alignsearch.seeding import derive_seed, generator


def intervention_mask(batch: PairBatch, length: int, stepwise: bool) -> Tensor:
    """Where to intervene: the position ``pos`` of each row (stepwise: every position ``0..pos``)."""
    cols = torch.arange(length, device=batch["pos"].device)[None, :]
    pos = batch["pos"][:, None]
    return cols <= pos if stepwise else cols == pos


def stack_batches(batches: list[PairBatch]) -> tuple[PairBatch, list[int]]:
    """Stack the ids, task masks and positions of several pair batches (right-padded to one length);
    returns the stacked batch and the row boundaries ``[0, n0, n0 + n1, ...]``.

    The filler id is irrelevant: filled columns come after each row's own end, are never scored, and
    the task models are causal (nothing before them reads them). ``labels`` are stacked when every
    batch has them (all batches of one run do, or none), and so are cached target states (``base``:
    the batches of one target model have them, or none do; zeros fill their padding)."""
    bounds = [0]
    for b in batches:
        bounds.append(bounds[-1] + len(b["ids"]))
    if len(batches) == 1:
        return batches[0], bounds
    length = max(b["ids"].shape[1] for b in batches)
    keys = ("ids", "task_mask", "labels") if all("labels" in b for b in batches) else ("ids", "task_mask")
    stacked = {k: torch.cat([F.pad(b[k], (0, length - b[k].shape[1])) for b in batches]) for k in keys}
    stacked["pos"] = torch.cat([b["pos"] for b in batches])
    if all(BASE in b for b in batches):
        stacked[BASE] = torch.cat([F.pad(b[BASE], (0, 0, 0, length - 1 - b[BASE].shape[1])) for b in batches])
    return stacked, bounds


def loss_shares(parts: list[dict[str, PairBatch]], tracks: list[Track], stepwise: bool) -> list[dict]:
    """Each micro-batch's share of every track's losses, ``{track name: (behaviour, latent)}``: its scored
    tokens over all parts' (a track's loss is a mean over its scored tokens), and its intervened positions
    with a latent target over all parts'. The parts' losses weighted by them add up to the loss of the
    whole batch; a track with nothing to count in any part splits evenly."""
    counts = [
        {
            t.name: (int(p[t.name]["task_mask"][:, 1:].sum()), latent_count(p[t.name], stepwise))
            for t in tracks
        }
        for p in parts
    ]
    shares = []
    for part in counts:
        share = {}
        for t in tracks:
            totals = [sum(c[t.name][i] for c in counts) for i in (0, 1)]
            share[t.name] = tuple(
                part[t.name][i] / totals[i] if totals[i] else 1 / len(parts) for i in (0, 1)
            )
        shares.append(share)
    return shares


def latent_count(batch: PairBatch, stepwise: bool) -> int:
    """Intervened positions that have a counterfactual-latent target (0 without latent targets)."""
    if "cl_found" not in batch:
        return 0
    found = batch["cl_found"]
    if stepwise:  # a target per position: those up to each row's last intervened position
        found = found & intervention_mask(batch, found.shape[1], stepwise=True)
    return int(found.sum())


class AlignmentModule(L.LightningModule):
    """Trains an :class:`Interchange` so that swapping a variable's subspace from a source run into a target
    run makes the (frozen) target model produce the counterfactual sequence of the causal model.

    Loss: cross-entropy on the task tokens of the counterfactual sequence (responses and EOS). The demo
    tokens and the trigger that follow an intervention are the base's own random draws: no model can
    predict them, so they are left out (the published code scored them, adding a loss floor that
    carries no signal about the variable). Metrics per track and evaluation split: ``iia`` (the share of
    pairs whose every task token is right; teacher-forced, which equals free-running here because each
    fed-back token is itself checked) and ``token_iia`` (the share of task tokens right, teacher-forced).

    Tracks with ``latent`` add ``track.latent_weight`` times the counterfactual-latent loss (the intervened
    vector against the target model's natural vector in the same causal state; ``cl_space="subspace"``:
    only their coordinates in the track variable's aligned subspace); for them the evaluation also
    reports ``cl_loss`` and ``cl_divergence`` (symmetric KL between value histograms of the two).
    Several models: one alignment function each, every track runs its own target model.

    ``accumulate``: each training batch is split into that many micro-batches, each run and backpropagated
    in turn, before one optimizer step (the loss of the whole batch, the memory of one micro-batch).
    Batches with cached target states (``base``, :func:`~alignsearch.search.pairs.add_base_states`) run
    only the target model's blocks above the site (``encode_from``); others run the whole model.
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
        cl_space: str = "full",
        accumulate: int = 1,
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
                        _key(t): nn.ModuleDict(
                            {"iia": TrialAccuracy(), "token_iia": TokenAccuracy()}
                            | ({"cl_loss": MeanMetric(), "cl_divergence": MeanMetric()} if t.latent else {})
                        )
                        for t in tracks
                    }
                )
                for split in self.eval_splits
            }
        )
        self.history: list[dict[str, Any]] = []
        self.automatic_optimization = False  # one backward and one Adam step, without Lightning's closure

    def train(self, mode: bool = True) -> AlignmentModule:
        """Only the alignment trains: the task models stay in eval mode (no dropout) throughout."""
        super().train(mode)
        self.task_models.eval()
        return self

    # -- running tracks -------------------------------------------------------------------------------------
    def run(self, track: Track, batch: PairBatch) -> TrackOutput:
        """The intervened target model on ``batch``: its loss, predictions, and (when ``batch`` carries
        counterfactual-latent targets, ``cl``) the latent loss and the vectors it compares."""
        return self.run_tracks([track], {track.name: batch})[0]

    def run_tracks(
        self, tracks: list[Track], batches: dict[str, PairBatch], top: bool = False
    ) -> list[TrackOutput]:
        """:meth:`run` for several tracks. Tracks with the same target model share one batched forward
        pass (their rows stacked), and parametrized matrices (rotations) are computed once for all of
        them, so that one backward pass goes through each of them once. ``top``: also the target's top
        states at the scored positions, intervened and natural (one more forward pass, without the
        intervention)."""
        groups = [
            [t for t in tracks if t.target == target] for target in dict.fromkeys(t.target for t in tracks)
        ]
        outputs: dict[str, TrackOutput] = {}
        with parametrize.cached():
            for group in groups:
                target = group[0].target
                above = top and has_layers_above(self._task_model(target), self.sites[target])
                outputs |= self._run_group(target, group, [batches[t.name] for t in group], above)
        return [outputs[t.name] for t in tracks]

    def _run_group(
        self, target: int, tracks: list[Track], batches: list[PairBatch], top: bool = False
    ) -> dict[str, TrackOutput]:
        model = self._task_model(target)
        resumed = cast(Resumable, model)  # batches with cached states (BASE) come from such a model
        stacked, bounds = stack_batches(batches)
        ids = stacked["ids"]
        inputs, task = ids[:, :-1], stacked["task_mask"][:, 1:]
        targets = stacked.get("labels", ids)[:, 1:]
        swapped: dict[int, tuple[Tensor, Tensor, Tensor, Tensor]] = {}

        def swap(h: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
            pieces = []
            for k, (track, batch) in enumerate(zip(tracks, batches, strict=True)):
                lo, hi = bounds[k], bounds[k + 1]
                where = ((rows >= lo) & (rows < hi)).nonzero().squeeze(1)
                local = rows[where] - lo
                h_s = batch["src"][local, cols[where]] if self.stepwise else batch["src"][local]
                # the alignment computes in its own precision (a bfloat16 model's vectors are cast; no
                # autocast: under bf16-mixed its matrices stay float32 too)
                natural = h[where]
                with torch.autocast(h.device.type, enabled=False):
                    out = self.interchange(
                        natural.to(h_s.dtype), h_s, track.variable, target=target, source=track.source
                    )
                swapped[k] = (out, local, cols[where], natural)
                pieces.append((where, out.to(h.dtype)))
            order = torch.cat([w for w, _ in pieces])
            values = torch.cat([v for _, v in pieces])
            return values[torch.argsort(order)] if len(pieces) > 1 else values

        mask = intervention_mask(stacked, inputs.shape[1], self.stepwise)
        columns = torch.arange(1, task.shape[1] + 1, device=task.device)
        scored = columns * task  # outputs after the last scored one are unused
        lengths = scored.max(1).values
        intervention = Intervention(self.sites[target], mask, swap, lengths)
        if BASE in stacked:  # the frozen states below the site were computed once: run the blocks above
            hidden = resumed.encode_from(
                self.sites[target], stacked[BASE][:, : inputs.shape[1]], intervention
            )
        else:
            hidden = hooks.encode(model, inputs, intervention)
        scored_cells = task.flatten().nonzero()[:, 0]  # index_select: its backward adds without sorting
        natural_top = hidden_top = None
        if top:  # the model's own top states at the scored positions, without the intervention
            with torch.no_grad():
                if BASE in stacked:
                    own = resumed.encode_from(self.sites[target], stacked[BASE][:, : inputs.shape[1]], None)
                else:
                    own = hooks.encode(model, inputs)
            natural_top = own.flatten(0, 1).index_select(0, scored_cells).float()
            hidden_top = hidden.detach().flatten(0, 1).index_select(0, scored_cells).float()
        logits = model.readout(hidden.flatten(0, 1).index_select(0, scored_cells)).float()
        losses = (
            F.cross_entropy(logits, targets[task], reduction="none") if task.any() else logits.sum(-1) * 0
        )
        preds = targets.clone()
        preds[task] = logits.argmax(-1)
        row_of = scored_cells // task.shape[1]
        results = {}
        for k, (track, batch) in enumerate(zip(tracks, batches, strict=True)):
            lo, hi = bounds[k], bounds[k + 1]
            in_rows = (row_of >= lo) & (row_of < hi)
            loss = losses[in_rows].mean() if in_rows.any() else logits.sum() * 0
            length = batch["ids"].shape[1] - 1
            out = TrackOutput(loss, preds[lo:hi, :length], targets[lo:hi, :length], task[lo:hi, :length])
            if k in swapped:
                h, rows, cols, natural = swapped[k]
                out.intervened, out.natural = h, natural.detach()
                if "cl" in batch:
                    # stepwise: a target per position
                    at = (rows, cols) if batch["cl"].dim() == 3 else (rows,)
                    out.cl, out.cl_found = batch["cl"][at], batch["cl_found"][at]
                    if self.hparams["cl_space"] == "subspace":
                        out.latent = self.subspace_latent_loss(track, out)
                    else:
                        out.latent = latent_loss(out.intervened, out.cl, out.cl_found)
            if natural_top is not None and hidden_top is not None:
                out.top = (natural_top[in_rows], hidden_top[in_rows])
            results[track.name] = out
        return results

    def subspace_latent_loss(self, track: Track, out: TrackOutput) -> Tensor:
        """The counterfactual-latent loss inside the aligned subspace: the intervened vector and its
        natural target mapped to the target's aligned coordinates, compared on the track variable's
        block only (the rest of the intervened vector is the base's own and is left alone)."""
        assert out.intervened is not None and out.cl is not None and out.cl_found is not None
        code = self.interchange.code
        z_intervened = code(out.intervened.to(out.cl.dtype), track.target)
        mask = self.interchange.layout.mask(track.variable)[: z_intervened.shape[-1]]
        return latent_loss(z_intervened, code(out.cl, track.target), out.cl_found, mask)

    def objective(self, track: Track, out: TrackOutput, shares: tuple[float, float] = (1.0, 1.0)) -> Tensor:
        """A trained track's share of the loss: its behavioural loss and/or ``track.latent_weight`` x its
        latent loss, each weighted by the micro-batch's share of it (:func:`loss_shares`)."""
        loss = out.loss * shares[0] if track.behavioural else out.loss.new_zeros(())
        if track.latent:
            assert out.latent is not None
            loss = loss + track.latent_weight * shares[1] * out.latent
        return loss

    def training_step(self, batch: dict[str, PairBatch], batch_idx: int) -> Tensor:
        """One optimizer step on ``batch``, in ``accumulate`` micro-batches (one backward pass each)."""
        layout = self.interchange.layout
        layout.on_train_step(self.global_step, self.hparams["max_steps"])
        trained = [t for t in self.tracks if t.trained]
        # one optimizer and one schedule (configure_optimizers)
        optimizer = cast(LightningOptimizer, self.optimizers())
        schedule = cast(LRScheduler, self.lr_schedulers())
        optimizer.zero_grad()
        parts = split_rows(batch, self.hparams["accumulate"])
        whole = {t.name: (1.0, 1.0) for t in trained}
        shares = loss_shares(parts, trained, self.stepwise) if len(parts) > 1 else [whole]
        total = torch.zeros((), device=self.device)  # + each micro-batch's loss
        logged: dict[str, Tensor | float] = {}
        for part, share in zip(parts, shares, strict=True):
            outputs = self.run_tracks(trained, part)
            objectives = [
                self.objective(t, out, share[t.name]) for t, out in zip(trained, outputs, strict=True)
            ]
            loss = torch.stack(objectives).mean() + layout.penalty() / len(parts)
            self.manual_backward(loss)
            total = total + loss.detach()
            for track, out in zip(trained, outputs, strict=True):  # the whole batch's losses, for the log
                b, c = share[track.name]
                logged[track.name] = logged.get(track.name, 0.0) + b * out.loss.detach()
                if track.latent:
                    assert out.latent is not None
                    logged[f"cl/{track.name}"] = logged.get(f"cl/{track.name}", 0.0) + c * out.latent.detach()
        for track in trained:
            size = len(batch[track.name]["ids"])
            self.log(f"train/loss/{track.name}", logged[track.name], batch_size=size)
            if track.latent:
                self.log(f"train/cl_loss/{track.name}", logged[f"cl/{track.name}"], batch_size=size)
        self.log("train/loss", total, prog_bar=True, batch_size=1)
        optimizer.step()
        schedule.step()
        return total

    def validation_step(self, batch: dict[str, PairBatch], batch_idx: int, dataloader_idx: int = 0) -> None:
        split = self.eval_splits[dataloader_idx]
        for track, out in zip(self.tracks, self.run_tracks(self.tracks, batch), strict=True):
            update_metrics(self._metrics(split, track), out)

    def on_validation_epoch_end(self) -> None:
        """Log every track's metrics, their summaries over trained tracks, and keep them in the history."""
        values = self.compute_metrics(reset=True)
        step = self.global_step
        for split, per_track in values.items():
            for name, metrics in per_track.items():
                for metric, value in metrics.items():
                    if value is not None:
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
            # IIA is never None (only the latent metrics can be)
            trained = [
                iia for t in self.tracks if t.trained and (iia := per_track[t.name]["iia"]) is not None
            ]
            if trained:
                self.log(f"{split}/iia_mean", sum(trained) / len(trained), prog_bar=split == "val")
                self.log(f"{split}/iia_min", min(trained))

    def _task_model(self, index: int) -> SequenceModel:
        return cast(SequenceModel, self.task_models[index])

    def _metrics(self, split: str, track: Track) -> Mapping[str, Metric]:
        """A track's metrics on an evaluation split (``iia``, ``token_iia``, ...): a ModuleDict."""
        return cast(Mapping[str, Metric], cast(nn.ModuleDict, self.metrics[split])[_key(track)])

    def compute_metrics(self, reset: bool = False) -> dict[str, dict[str, dict[str, float | None]]]:
        """Every split's metrics per track (None: a latent metric that saw no matched target)."""
        out: dict[str, dict[str, dict[str, float | None]]] = {}
        for split in self.eval_splits:
            out[split] = {}
            for track in self.tracks:
                metrics = self._metrics(split, track)
                if int(cast(TrialAccuracy, metrics["iia"]).total) == 0:
                    continue
                out[split][track.name] = {name: _value(m) for name, m in metrics.items()}
                if reset:
                    for m in metrics.values():
                        m.reset()
        return out

    @torch.no_grad()
    def evaluate(
        self,
        tracks: dict[str, PairBatch],
        batch_size: int = 1000,
        divergence: bool = False,
        intervals: Sequence[str] = (),
    ) -> dict[str, dict[str, Any]]:
        """IIA and token IIA of every track on the given pairs (outside the Lightning loop), and the IIA of
        the pairs intervened at each base position (``iia_by_position``: ``{"5": 0.9, ...}``; stepwise:
        by the last swapped position). ``divergence``: also how far the interventions push the target
        off its natural states (:mod:`alignsearch.search.divergence`), at the site (``divergence``,
        ``divergence_floor``) and, where the model has layers above it, at its top states at the scored
        positions (``divergence_top``, ``divergence_top_floor``). ``intervals``: the measures (``iia``,
        ``token_iia``) whose 95% interval over the pairs to give too, with the number of pairs
        (``n_pairs``; ``iia_low``, ``iia_high``: Wilson; ``token_iia_low``, ``token_iia_high``: a
        bootstrap, :func:`pair_intervals`), and each position's pairs and Wilson interval
        (``n_pairs_by_position``, ``iia_by_position_interval``)."""
        was_training = self.training
        self.eval()
        device = hooks.device_of(self)  # the batches go where the module is
        metrics: dict[str, dict[str, Any]] = {}
        by_position: dict[str, dict[int, list[int]]] = {track.name: {} for track in self.tracks}
        for track in self.tracks:
            metrics[track.name] = {"iia": TrialAccuracy(), "token_iia": TokenAccuracy()}
            if track.latent:
                metrics[track.name] |= {"cl_loss": MeanMetric(), "cl_divergence": MeanMetric()}
            metrics[track.name] = {k: m.to(device) for k, m in metrics[track.name].items()}
        seen: dict[str, dict[str, list[Tensor]]] = {t.name: {} for t in self.tracks}
        per_pair: dict[str, list[Tensor]] = {t.name: [] for t in self.tracks}
        for batch in eval_batches(tracks, batch_size):
            batch = {name: {k: v.to(device) for k, v in pairs.items()} for name, pairs in batch.items()}
            outputs = self.run_tracks(self.tracks, batch, top=divergence)
            for track, out in zip(self.tracks, outputs, strict=True):
                update_metrics(metrics[track.name], out)
                if divergence:
                    collect_states(seen[track.name], out)
                right = ((out.preds == out.targets) | ~out.task).all(1)
                if intervals:  # each pair: right or not, its task tokens right, its task tokens
                    hits = ((out.preds == out.targets) & out.task).sum(1)
                    per_pair[track.name].append(torch.stack([right.long(), hits, out.task.sum(1)], 1).cpu())
                for pos, hit in zip(batch[track.name]["pos"].tolist(), right.tolist(), strict=True):
                    counts = by_position[track.name].setdefault(pos, [0, 0])
                    counts[0], counts[1] = counts[0] + hit, counts[1] + 1
        self.train(was_training)
        results: dict[str, dict[str, Any]] = {}
        for name, per in metrics.items():
            results[name] = {k: _value(m) for k, m in per.items()}
            results[name]["iia_by_position"] = {
                str(p): h / n for p, (h, n) in sorted(by_position[name].items())
            }
            results[name] |= divergences(seen[name], name) if divergence else {}
            if intervals:
                results[name]["n_pairs_by_position"] = {
                    str(p): n for p, (_, n) in sorted(by_position[name].items())
                }
                results[name]["iia_by_position_interval"] = {
                    str(p): wilson(h, n) for p, (h, n) in sorted(by_position[name].items())
                }
                hits = torch.cat(per_pair[name])
                results[name] |= pair_intervals(hits, name, token="token_iia" in intervals)
                results[name] |= {
                    "pair_hits": "".join(map(str, hits[:, 0].tolist())),
                    "pairs_sha256": pairs_digest(tracks[name]),
                }
        return results

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


@dataclass
class TrackOutput:
    """What one track's run gives: behavioural loss, predictions against targets on the task mask, and
    for latent tracks the latent loss with the intervened vectors, their targets and which were found."""

    loss: Tensor
    preds: Tensor
    targets: Tensor
    task: Tensor
    latent: Tensor | None = None
    intervened: Tensor | None = None
    """The vectors the interchange put at the site (one per intervened position)."""
    natural: Tensor | None = None
    """The target model's own vectors there, before the swap."""
    cl: Tensor | None = None
    cl_found: Tensor | None = None
    top: tuple[Tensor, Tensor] | None = None
    """Natural and intervened top states at the scored positions (when asked for, and the model has
    layers above the site)."""


def collect_states(store: dict[str, list[Tensor]], out: TrackOutput) -> None:
    """Keep a batch's natural and intervened vectors (site and top) for the divergence measures."""
    pairs = [("site", (out.natural, out.intervened))] + ([("top", out.top)] if out.top is not None else [])
    for where, (natural, intervened) in pairs:
        if natural is not None and intervened is not None:
            store.setdefault(f"{where}_natural", []).append(natural.detach().float().cpu())
            store.setdefault(f"{where}_intervened", []).append(intervened.detach().float().cpu())


def divergences(store: dict[str, list[Tensor]], track: str) -> dict[str, float | None]:
    """The divergence measures of one track's collected vectors (None where there are none)."""
    out: dict[str, float | None] = {}
    for where, prefix in (("site", "divergence"), ("top", "divergence_top")):
        if f"{where}_natural" not in store:
            out |= {prefix: None, f"{prefix}_floor": None}
            continue
        measured = divergence(
            torch.cat(store[f"{where}_natural"]),
            torch.cat(store[f"{where}_intervened"]),
            generator(0, "divergence", track, where),
        )
        out |= {prefix: measured["divergence"], f"{prefix}_floor": measured["divergence_floor"]}
    return out


def pair_intervals(per_pair: Tensor, track: str, token: bool = True) -> dict[str, Any]:
    """The number of pairs and the 95% intervals over them of a track's evaluation (rows: each pair's
    ``[right, task tokens right, task tokens]``): ``iia_low``/``iia_high`` by Wilson's interval for the
    share of pairs right and, with ``token``, ``token_iia_low``/``token_iia_high`` by a bootstrap over
    pairs of the share of task tokens right (:func:`alignsearch.intervals.bootstrap_share`, seeded by the
    track's name: the same pairs give the same interval, run after run).

    >>> pair_intervals(torch.tensor([[1, 3, 3]] * 45 + [[0, 2, 3]] * 5), "0>0/count")
    {'n_pairs': 50, 'iia_low': 0.786398, 'iia_high': 0.956524, 'token_iia_low': 0.933333, 'token_iia_high': 0.993333}
    """
    keys = ("n_pairs", "iia_low", "iia_high", *(("token_iia_low", "token_iia_high") if token else ()))
    n = int(per_pair.shape[0])
    if n == 0:
        return dict.fromkeys(keys)
    bounds: tuple[float | None, float | None] = (None, None)  # no task token at all: no token IIA to bound
    if token and int(per_pair[:, 2].sum()) > 0:
        bounds = bootstrap_share(per_pair[:, 1], per_pair[:, 2], seed=derive_seed(0, "token_iia", track))
    values = (n, *wilson(int(per_pair[:, 0].sum()), n), *(bounds if token else ()))
    return dict(zip(keys, values, strict=True))


def pairs_digest(pairs: PairBatch) -> str:
    """A digest of a split's pairs as the model reads them, in order: the base sequences (``ids``) and the
    intervened positions (``pos``), not what is swapped in or the targets (the same pairs under another
    causal model or partner have the same digest). 16 hex digits of SHA-256.

    >>> pairs_digest({"ids": torch.tensor([[1, 2, 3]]), "pos": torch.tensor([1])})
    '1b585d41590135ed'
    """
    digest = hashlib.sha256()
    for key in ("ids", "pos"):
        tensor = pairs[key].detach().to("cpu", torch.int64).contiguous()
        digest.update(f"{key}{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]


def has_layers_above(model: SequenceModel, site: str) -> bool:
    """Whether the model's top states (what ``encode`` returns) are above ``site``: not for its last
    layer's output (``layer.<last>``, or an LSTM's ``layer.<last>.h``); for a part of a layer
    (``layer.<i>.attn``) or a module path, assumed."""
    layers = [int(s.split(".")[1]) for s in model.sites if s.startswith("layer.")]
    top = LAYER_OUTPUT.fullmatch(site)
    return not (layers and top is not None and int(top.group(1)) == max(layers))


LAYER_OUTPUT = re.compile(r"layer\.(\d+)(?:\.h)?")
"""A layer's output: ``layer.<i>``, or an LSTM's hidden state ``layer.<i>.h``."""


class Resumable(Protocol):
    """A model that runs from its states at a site (:func:`alignsearch.search.pairs.resumable`)."""

    def encode_from(self, site: str, hidden: Tensor, intervention: Intervention | None = None) -> Tensor: ...


def update_metrics(metrics: Mapping[str, Metric], out: TrackOutput) -> None:
    """Add one batch of a track to its metrics (IIA, token IIA, and the latent ones where present)."""
    metrics["iia"].update(out.preds, out.targets, out.task)
    metrics["token_iia"].update(out.preds, out.targets, out.task)
    if "cl_loss" in metrics and out.latent is not None:
        assert out.cl_found is not None and out.intervened is not None and out.cl is not None
        weight = int(out.cl_found.sum())
        if weight:
            metrics["cl_loss"].update(out.latent, weight)
            found = out.cl_found
            metrics["cl_divergence"].update(
                histogram_divergence(out.intervened[found], out.cl[found]), weight
            )


def _value(metric) -> float | None:
    """A metric's value, or None where it saw nothing (a latent metric without matched targets)."""
    if isinstance(metric, MeanMetric) and float(metric.weight) == 0:
        return None
    return float(metric.compute())


def _key(track: Track) -> str:
    """A ModuleDict key for a track (no dots allowed there)."""
    return track.name.replace(".", "_")
