"""Align a site of trained task models: check the settings, build the pairs, train, select, evaluate."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import get_class
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from alignsearch.alignment import NULL, Interchange
from alignsearch.components import instantiate_checked
from alignsearch.errors import ConfigError, require_positive
from alignsearch.models import SequenceModel
from alignsearch.seeding import derive_seed, generator
from alignsearch.tasks import CausalModel, causal_model_for
from alignsearch.tasks.counterfactual import make_pairs, swap_variables
from alignsearch.training.alignment_data import PairBatch, PairDataModule, Track, pair_tensors
from alignsearch.training.alignment_module import AlignmentModule
from alignsearch.training.callbacks import StopAtAccuracy, TrainClock
from alignsearch.training.fit import LAST_CHECKPOINT, check_checkpoint, make_trainer, quiet_lightning

EVAL_SPLITS = ("val", "heldout", "test")


def site_name(layer: Any) -> str:
    """``layer`` as a site name: ``0`` -> ``layer.0``; ``embedding`` stays."""
    return "embedding" if str(layer) == "embedding" else f"layer.{layer}"


@dataclass
class AlignmentPlan:
    """Everything an alignment run needs, checked before any work: site, variables, layout, function."""

    site: str
    width: int
    variables: list[str]
    causal_model: CausalModel
    sizes: list[int]
    settings: DictConfig

    @property
    def named_variables(self) -> list[str]:
        return [v for v in self.variables if v != NULL]

    def build_interchange(self, n_models: int = 1) -> Interchange:
        functions = [
            build_function(self.settings.function, self.width, sum(self.sizes)) for _ in range(n_models)
        ]
        layout = instantiate_checked(
            self.settings.layout,
            None,
            variables=self.variables,
            sizes=self.sizes,
            code_width=functions[0].code_width,
            n_aligned=functions[0].n_aligned,
        )
        return Interchange(functions, layout)


def build_function(node: DictConfig, width: int, total_units: int):
    """An alignment function for a site of ``width``; low-rank functions get ``rank = total_units``."""
    extra: dict[str, Any] = {"width": width}
    if "rank" in inspect.signature(get_class(node._target_).__init__).parameters and node.get("rank") is None:
        extra["rank"] = total_units
    return instantiate_checked(node, "alignment.function", **extra)


def plan_alignment(cfg: DictConfig, task, model: SequenceModel) -> AlignmentPlan:
    """Check the alignment settings against the task and the (untrained) model; raise ConfigError if wrong."""
    a = cfg.alignment
    site = site_name(cfg.layer)
    if site not in model.sites:
        layers = ", ".join(["embedding", *[s.split(".")[1] for s in model.sites if s != "embedding"]])
        raise ConfigError("layer", cfg.layer, f"a layer of the {model.name}: {layers}")
    causal_model = causal_model_for(task, a.causal_model)
    variables = [NULL if v is None else v for v in a.variables]  # `null` on a command line arrives as None
    if not variables or len(set(variables)) != len(variables):
        raise ConfigError("alignment.variables", variables, "a non-empty list without repeats")
    for variable in variables:
        swap_variables(causal_model, variable)  # raises for an unknown variable
    named = [v for v in variables if v != NULL]
    if not named:
        raise ConfigError("alignment.variables", variables, "at least one variable besides null")
    n_units = cfg.n_units
    sizes = list(n_units) if OmegaConf.is_list(n_units) else [n_units] * len(named)
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= model.sites[site]:
            raise ConfigError(
                "n_units", size, f"an integer in [1, {model.sites[site]}] (the width of {site})"
            )
    for key in (
        "batch_size",
        "eval_batch_size",
        "max_steps",
        "val_every",
        "n_train",
        "n_val",
        "n_heldout",
        "n_test",
    ):
        require_positive(f"alignment.{key}", a[key])
    if not a.lr > 0:
        raise ConfigError("alignment.lr", a.lr, "a positive learning rate")
    if a.get("max_minutes") is not None and not (
        isinstance(a.max_minutes, int | float) and not isinstance(a.max_minutes, bool) and a.max_minutes > 0
    ):
        raise ConfigError("alignment.max_minutes", a.max_minutes, "a positive number of minutes, or null")
    plan = AlignmentPlan(site, model.sites[site], variables, causal_model, sizes, a)
    plan.build_interchange()  # checks the function and the layout (total size, room for null)
    return plan


def build_pairs(
    plan: AlignmentPlan, task, model: SequenceModel, seed: int
) -> tuple[dict[str, PairBatch], dict[str, dict[str, PairBatch]], list[Track]]:
    """Training pairs and evaluation pairs (``val``, ``heldout`` if the task holds counts out, ``test``)."""
    a = plan.settings
    tracks = [Track(0, 0, v) for v in plan.variables]
    sizes = {"train": a.n_train, "val": a.n_val, "heldout": a.n_heldout, "test": a.n_test}
    splits = ["train", "val", "test"] + (["heldout"] if "heldout" in task.splits() else [])
    data: dict[str, dict[str, PairBatch]] = {}
    for split in splits:
        data[split] = {}
        for track in tracks:
            pairs = make_pairs(
                task,
                plan.causal_model,
                track.variable,
                sizes[split],
                generator(seed, "pairs", split, track.variable),
                split="heldout" if split == "heldout" else "train",
                stepwise=a.stepwise,
                keep_extrapolation=a.keep_extrapolation,
            )
            data[split][track.name] = pair_tensors(pairs, model, plan.site)
    train = data.pop("train")
    return train, data, tracks


def fit_alignment(
    cfg: DictConfig,
    plan: AlignmentPlan,
    task,
    model: SequenceModel,
    model_name: str,
    out_dir: Path,
    *,
    loggers: list | bool = False,
    callbacks: list[L.Callback] = (),
) -> dict[str, Any]:
    """Train the alignment in ``out_dir`` (resuming from its checkpoint), keep the best, and evaluate it."""
    quiet_lightning()
    a, hardware = plan.settings, cfg.hardware
    if hardware.get("threads"):
        torch.set_num_threads(int(hardware.threads))
    seed = int(cfg.seed)
    train, evals, tracks = build_pairs(plan, task, model, seed)
    test = evals.pop("test")
    L.seed_everything(derive_seed(seed, "alignment-init") % 2**31, verbose=False)
    module = AlignmentModule(
        [model],
        [plan.site],
        plan.build_interchange(),
        tracks,
        eval_splits=tuple(evals),
        stepwise=a.stepwise,
        lr=a.lr,
        warmup_steps=a.warmup_steps,
        max_steps=a.max_steps,
        min_lr_ratio=a.min_lr_ratio,
    )
    data = PairDataModule(train, evals, a.batch_size, a.eval_batch_size, seed)
    ckpt_dir = out_dir / "checkpoints"
    best = ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor="val/iia_mean", mode="max", save_last=True, save_top_k=1
    )
    clock = TrainClock()
    trainer_callbacks = [
        best,
        StopAtAccuracy("val/iia_min", a.stop_at, 1),
        EarlyStopping(
            "val/iia_mean",
            mode="max",
            patience=a.patience,
            min_delta=a.min_delta,
            check_on_train_epoch_end=False,
        ),
        clock,
        *callbacks,
    ]
    trainer = make_trainer(
        hardware,
        max_steps=a.max_steps,
        val_every=a.val_every,
        callbacks=trainer_callbacks,
        loggers=loggers,
        root=out_dir,
        max_time={"minutes": a.max_minutes} if a.get("max_minutes") else None,
        inference_mode=False,  # metric states must stay ordinary tensors across validate, fit and evaluate
    )
    resume = ckpt_dir / LAST_CHECKPOINT
    if resume.exists():
        check_checkpoint(resume, "checkpoint")
    else:
        resume = None
        trainer.validate(module, datamodule=data, verbose=False)  # IIA before any training (step 0)
    trainer.fit(module, datamodule=data, ckpt_path=resume)

    if best.best_model_path:
        state = torch.load(best.best_model_path, map_location="cpu", weights_only=False)
        module.load_state_dict(state["state_dict"])
        best_step = int(state["global_step"])
    else:
        best_step = trainer.global_step
    final = {
        split: module.evaluate(pairs, a.eval_batch_size) for split, pairs in {**evals, "test": test}.items()
    }
    step0 = {r["variable"]: r["iia"] for r in module.history if r["step"] == 0 and r["split"] == "val"}
    records = []
    for track in tracks:
        val = final["val"][track.name]
        records.append(
            {
                "source": model_name,
                "target": model_name,
                "direction": f"{track.source}>{track.target}",
                "variable": track.variable,
                "trained": track.trained,
                "iia": val["iia"],
                "iia_heldout": final["heldout"][track.name]["iia"] if "heldout" in final else None,
                "iia_test": final["test"][track.name]["iia"],
                "token_iia": val["token_iia"],
                "iia_step0": step0.get(track.variable),
            }
        )
    return {
        "steps": trainer.global_step,
        "best_step": best_step,
        "train_seconds": round(clock.seconds, 2),
        "records": records,
        "learned_units": module.interchange.layout.learned_sizes(),
        "history": module.history,
        "state": module.interchange.state_dict(),
    }


def flat_config(cfg: DictConfig, plan: AlignmentPlan, choices: dict[str, str]) -> dict[str, Any]:
    """The choices of a run as one flat dict (what dashboards and reports pivot on)."""
    a = plan.settings
    return {
        "task": choices.get("task"),
        "model": choices.get("model"),
        "alignment": a.name,
        "seed": int(cfg.seed),
        "layer": cfg.layer,
        "site": plan.site,
        "n_units": plan.sizes[0] if len(set(plan.sizes)) == 1 else plan.sizes,
        "variables": list(plan.variables),
        "causal_model": plan.causal_model.name,
        "stepwise": bool(a.stepwise),
        "lr": float(a.lr),
        "batch_size": int(a.batch_size),
        "max_steps": int(a.max_steps),
        "function": a.function._target_.rsplit(".", 1)[-1],
        "layout": a.layout._target_.rsplit(".", 1)[-1],
    }
