"""Align a site of trained task models: check the settings, build the pairs, train, select, evaluate."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from torch import Tensor

from alignsearch.alignment import Interchange
from alignsearch.engine.accelerator import check_accelerator, compute_device
from alignsearch.engine.callbacks import SaveOnSignal, StopAtAccuracy, TrainClock
from alignsearch.engine.trainer import (
    LAST_CHECKPOINT,
    check_checkpoint,
    load_weights_only,
    make_trainer,
    quiet_lightning,
    use_threads,
)
from alignsearch.intervals import wilson
from alignsearch.models import SequenceModel
from alignsearch.search.datamodule import PairDataModule
from alignsearch.search.latent_targets import latent_targets
from alignsearch.search.module import AlignmentModule
from alignsearch.search.pairs import (
    PairBatch,
    PrefixCache,
    Track,
    add_base_states,
    pair_tensors,
    with_latent_targets,
)
from alignsearch.search.records import DIVERGENCE_KEYS, AlignmentRecord
from alignsearch.search.spec import AlignmentPlan, init_seed
from alignsearch.seeding import generator
from alignsearch.settings import AlignmentSettings, HardwareSettings
from alignsearch.tasks.counterfactual import make_pairs

EVAL_SPLITS = ("val", "heldout", "test")
PREFIX_CACHE_DIR = "prefix_cache"
"""The run folder's subfolder for cached target states beyond ``alignment.prefix_cache_mb`` (removed at
the end of the run)."""


def build_pairs(
    plan: AlignmentPlan, models: list[SequenceModel], seed: int
) -> tuple[dict[str, PairBatch], dict[str, dict[str, PairBatch]], list[Track]]:
    """Training pairs and evaluation pairs (``val``, ``heldout`` if the target's task holds counts out,
    ``test``) of every track; a track's base sequences come from its target's task, sources from its
    source's task, and latent tracks carry their counterfactual-latent targets."""
    a = plan.settings
    tracks = plan.tracks()
    if plan.data is not None:
        return plan.data.build(tracks, models, [m.site for m in plan.members], seed)
    sizes = {"train": a.n_train, "val": a.n_val, "heldout": a.n_heldout, "test": a.n_test}
    heldout = all("heldout" in m.task.splits() for m in plan.members)
    splits = ["train", "val", "test"] + (["heldout"] if heldout else [])
    data: dict[str, dict[str, PairBatch]] = {}
    for split in splits:
        data[split] = {}
        for track in tracks:
            source, target = plan.members[track.source], plan.members[track.target]
            assert target.causal_model is not None  # task pairs: every member has one
            k = plan.variables.index(track.variable)
            # DAS keeps its historical seeds; other directions add their own key
            keys = (split, track.variable) if track.direction == "0>0" else (split, track.name)
            pairs = make_pairs(
                target.task,
                target.causal_model,
                target.variables[k],
                sizes[split],
                generator(seed, "pairs", *keys),
                split="heldout" if split == "heldout" else "train",
                stepwise=a.stepwise,
                keep_extrapolation=a.keep_extrapolation,
                source_task=source.task,
                source_causal_model=source.causal_model,
                source_variable=source.variables[k],
                position=plan.position,
            )
            tensors = pair_tensors(pairs, models[track.source], source.site)
            if track.latent:
                vectors, found = latent_targets(
                    pairs,
                    target.task,
                    target.causal_model,
                    models[track.target],
                    target.site,
                    generator(seed, "latent", *keys),
                )
                tensors = with_latent_targets(tensors, vectors, found)
            data[split][track.name] = tensors
    train = data.pop("train")
    return train, data, tracks


def natural_states(train: dict[str, PairBatch], tracks: list[Track], n_models: int) -> list[Tensor | None]:
    """Each model's natural states at its site, from the training pairs: the source vectors of the first
    track it is the source of (one track's are enough: they are all that model's own states; stepwise
    pairs: those at the swapped positions); None for a model that is no track's source."""
    states: list[Tensor | None] = []
    for model in range(n_models):
        first = next((t.name for t in tracks if t.source == model), None)
        if first is None:
            states.append(None)
            continue
        src, pos = train[first]["src"], train[first]["pos"]
        if src.dim() == 3:
            src = src[torch.arange(src.shape[1])[None, :] <= pos[:, None]]
        states.append(src)
    return states


def standardized(interchange: Interchange, train: dict[str, PairBatch], tracks: list[Track]) -> Interchange:
    """``interchange`` with its standardizers fitted to the models' natural states (where it has them:
    ``match_scales``; otherwise nothing is gathered)."""
    if interchange.match_scales:
        interchange.fit_standardizers(natural_states(train, tracks, len(interchange.functions)))
    return interchange


@dataclass
class AlignmentOutcome:
    """What fitting an alignment gives: its training, the final records and the kept weights."""

    steps: int
    best_step: int
    train_seconds: float
    records: list[AlignmentRecord]
    """One per (source, target, variable)."""
    learned_units: dict[str, float] | None
    """Each variable's subspace size (learned ones are fractional)."""
    history: list[dict[str, Any]]
    """IIA at every evaluation: step, split, source, target, variable, trained, iia, token_iia, ..."""
    state: dict[str, Any]
    """The interchange's state dict (the kept, best alignment)."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Where its wall time went: ``pairs`` (building the pairs and cached states), ``steps`` (training
    steps), ``validation`` (the evaluations during training and at step 0), ``evaluation`` (the final one,
    with the divergence), ``other`` (the rest: checkpoints, loading the best)."""


def fit_alignment(
    plan: AlignmentPlan,
    models: list[SequenceModel],
    out_dir: Path,
    *,
    seed: int,
    hardware: HardwareSettings,
    loggers: list | bool = False,
    callbacks: Sequence[L.Callback] = (),
) -> AlignmentOutcome:
    """Train the alignment in ``out_dir`` (resuming from its checkpoint), keep the best, and evaluate it;
    pairs and initial weights are drawn from ``seed``.

    With ``alignment.prefix_cache``, target models that can resume at their site (HuggingFace GPT-2 and
    Llama at ``embedding`` or ``layer.<i>``) get their states there computed once for the training and
    selection pairs (not ``test``, read once): each step then runs only the blocks above the site. They
    are kept in memory up to ``alignment.prefix_cache_mb``, beyond it in memory-mapped files in
    ``out_dir/prefix_cache`` (removed when this returns or fails)."""
    check_accelerator(hardware)
    quiet_lightning()
    a = plan.settings
    use_threads(hardware)
    start = time.perf_counter()
    for model in models:  # the pairs' activations and cached states are computed where training runs
        model.to(compute_device(hardware))
    train, evals, tracks = build_pairs(plan, models, seed)
    cache = PrefixCache(a.prefix_cache_mb, out_dir / PREFIX_CACHE_DIR)
    try:
        if a.prefix_cache:
            splits = [train, *(pairs for split, pairs in evals.items() if split != "test")]
            add_base_states(splits, tracks, models, [m.site for m in plan.members], cache)
            if cache.on_disk:
                print(
                    f"prefix cache: {cache.in_memory / 2**20:.0f} MB of target states in memory, "
                    f"{cache.on_disk / 2**20:.0f} MB in memory-mapped files ({out_dir / PREFIX_CACHE_DIR})",
                    flush=True,
                )
        pairs_seconds = time.perf_counter() - start
        out = _fit(plan, models, out_dir, train, evals, tracks, seed, hardware, loggers, callbacks)
        out.seconds["pairs"] = pairs_seconds
        out.seconds["other"] = time.perf_counter() - start - sum(out.seconds.values())
        return out
    finally:
        cache.close()


def stopping_callbacks(a: AlignmentSettings) -> list[L.Callback]:
    """The callbacks that end an alignment's training before ``max_steps``: at ``stop_at`` (every trained
    track's validation IIA) or after ``patience`` evaluations without a better mean validation IIA; none
    when ``stop_at`` is null (exactly ``max_steps`` steps, unless ``max_minutes`` runs out first)."""
    if a.stop_at is None:
        return []
    return [
        StopAtAccuracy("val/iia_min", a.stop_at, 1),
        EarlyStopping(
            "val/iia_mean",
            mode="max",
            patience=a.patience,
            min_delta=a.min_delta,
            check_on_train_epoch_end=False,
        ),
    ]


def _fit(
    plan: AlignmentPlan,
    models: list[SequenceModel],
    out_dir: Path,
    train: dict[str, PairBatch],
    evals: dict[str, dict[str, PairBatch]],
    tracks: list[Track],
    seed: int,
    hardware: HardwareSettings,
    loggers: list | bool,
    callbacks: Sequence[L.Callback],
) -> AlignmentOutcome:
    """:func:`fit_alignment` once the pairs are built."""
    a = plan.settings
    test = evals.pop("test", None)
    curves = {split: pairs for split, pairs in evals.items() if split == "val" or a.heldout_curve}
    L.seed_everything(init_seed(seed), verbose=False)
    module = AlignmentModule(
        models,
        [m.site for m in plan.members],
        standardized(plan.take_interchange(seed), train, tracks),
        tracks,
        eval_splits=tuple(curves),
        stepwise=a.stepwise,
        lr=a.lr,
        warmup_steps=a.warmup_steps,
        max_steps=a.max_steps,
        min_lr_ratio=a.min_lr_ratio,
        cl_space=a.cl_space,
        accumulate=a.accumulate,
    )
    data = PairDataModule(train, curves, a.batch_size * a.accumulate, a.eval_batch_size, seed)
    ckpt_dir = out_dir / "checkpoints"
    best = ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor="val/iia_mean", mode="max", save_last=True, save_top_k=1
    )
    clock = TrainClock()
    trainer_callbacks = [
        best,
        *stopping_callbacks(a),
        clock,
        *callbacks,
        SaveOnSignal(ckpt_dir / LAST_CHECKPOINT),  # after the step's other callbacks
    ]
    trainer = make_trainer(
        hardware,
        max_steps=a.max_steps,
        val_every=a.val_every,
        callbacks=trainer_callbacks,
        loggers=loggers,
        root=out_dir,
        max_time={"minutes": a.max_minutes} if a.max_minutes else None,
        inference_mode=False,  # metric states must stay ordinary tensors across validate, fit and evaluate
    )
    last = ckpt_dir / LAST_CHECKPOINT
    resume = last if last.exists() else None
    first_validation = time.perf_counter()
    if resume is not None:
        check_checkpoint(resume, "checkpoint")
    else:
        trainer.validate(module, datamodule=data, verbose=False)  # IIA before any training (step 0)
    first_validation = time.perf_counter() - first_validation
    trainer.fit(module, datamodule=data, ckpt_path=resume)

    if best.best_model_path:
        state = load_weights_only(best.best_model_path)  # data only, as every checkpoint is read
        module.load_state_dict(state["state_dict"])
        best_step = int(state["global_step"])
    else:
        best_step = trainer.global_step
    module.to(compute_device(hardware))  # where training ran (Lightning hands the module back on the CPU)
    evaluating = time.perf_counter()
    final = {
        split: module.evaluate(
            pairs,
            a.eval_batch_size,
            divergence=split == "val",
            intervals=("iia", "token_iia") if split == "val" else ("iia",),  # records keep val's token IIA
        )
        for split, pairs in {**evals, **({"test": test} if test else {})}.items()
    }
    evaluating = time.perf_counter() - evaluating
    module.cpu()  # the kept state and the models on the CPU, as a caller gave them
    step0 = {
        (r["source"], r["target"], r["variable"]): r["iia"]
        for r in module.history
        if r["step"] == 0 and r["split"] == "val"
    }
    records = [
        track_record(plan, track, final, step0.get((track.source, track.target, track.variable)))
        for track in tracks
    ]
    return AlignmentOutcome(
        steps=trainer.global_step,
        best_step=best_step,
        train_seconds=round(clock.seconds, 2),
        records=records,
        learned_units=module.interchange.layout.learned_sizes(),
        history=module.history,
        state=module.interchange.state_dict(),
        seconds={
            "steps": clock.step_seconds,
            "validation": clock.validation_seconds + first_validation,
            "evaluation": evaluating,
        },
    )


def track_record(
    plan: AlignmentPlan, track: Track, final: dict[str, dict[str, dict]], iia_step0: float | None
) -> AlignmentRecord:
    """A track's record: its models, variable, training and final metrics, each IIA with its number of
    pairs and its 95% interval over them (``iia_step0``: Wilson's, on the validation pairs it was measured
    on)."""
    source, target = plan.members[track.source], plan.members[track.target]
    k = plan.variables.index(track.variable)
    val = final["val"][track.name]
    test = final["test"][track.name] if "test" in final else None
    heldout = final["heldout"][track.name] if "heldout" in final else None
    n_pairs = val.get("n_pairs")
    step0: tuple[float | None, float | None] = (None, None)
    if iia_step0 is not None and n_pairs:
        step0 = wilson(round(iia_step0 * n_pairs), n_pairs)  # the share of the same pairs: a whole number
    crossed = (source.variables[k], target.variables[k]) != (track.variable, track.variable)
    divergences: dict[str, Any] = {key: val.get(key) for key in DIVERGENCE_KEYS}
    return AlignmentRecord(
        source=source.name,
        target=target.name,
        direction=track.direction,
        variable=track.variable,
        trained=track.trained,
        loss=track.loss,
        iia=val["iia"],
        iia_heldout=None if heldout is None else heldout["iia"],
        iia_test=None if test is None else test["iia"],
        token_iia=val["token_iia"],
        iia_step0=iia_step0,
        iia_by_position={pos: round(v, 4) for pos, v in val["iia_by_position"].items()},
        n_pairs_by_position=val.get("n_pairs_by_position", {}),
        iia_by_position_interval=val.get("iia_by_position_interval", {}),
        source_variable=source.variables[k] if crossed else None,
        target_variable=target.variables[k] if crossed else None,
        cl_loss=val.get("cl_loss") if track.latent else None,
        cl_divergence=val.get("cl_divergence") if track.latent else None,
        **divergences,
        n_pairs=n_pairs,
        iia_low=val.get("iia_low"),
        iia_high=val.get("iia_high"),
        token_iia_low=val.get("token_iia_low"),
        token_iia_high=val.get("token_iia_high"),
        iia_step0_low=step0[0],
        iia_step0_high=step0[1],
        n_pairs_heldout=None if heldout is None else heldout.get("n_pairs"),
        iia_heldout_low=None if heldout is None else heldout.get("iia_low"),
        iia_heldout_high=None if heldout is None else heldout.get("iia_high"),
        n_pairs_test=None if test is None else test.get("n_pairs"),
        iia_test_low=None if test is None else test.get("iia_low"),
        iia_test_high=None if test is None else test.get("iia_high"),
        pair_hits=val.get("pair_hits"),
        pairs_sha256=val.get("pairs_sha256"),
    )
