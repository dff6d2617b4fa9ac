"""The model zoo: where trained task models live, and load-or-train with a file lock.

Layout (the root is ``paths.zoo_dir``, by default ``$ALIGNSEARCH_ZOO`` or ``./zoo``)::

    zoo/multiobject/gru/seed0/            task / model / seed (+ "-key value" for non-default settings)
        model.pt                          state dict, loadable with torch.load(weights_only=True)
        config.yaml                       resolved task, model, training and seed settings
        metrics.json                      val/heldout trial and token accuracy, steps, train_seconds
        entry.json                        names, vocabulary, sites and snapshots (checked when loading)
        checkpoints/last.ckpt             Lightning state of the run's end
        snapshots/step100.pt              weights after step 100 (``training.keep_steps``), if asked for
    zoo/multiobject/gru/seed0.partial/    a run in progress (resumed from its checkpoint when rerun)
    zoo/multiobject/gru/seed0.lock        held while a process trains the entry

An entry appears in one ``rename`` when its training is complete, so a folder without ``.partial`` is
always complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from filelock import FileLock
from omegaconf import DictConfig, OmegaConf

from alignsearch import io
from alignsearch.components import build_model, build_task, settings_suffix
from alignsearch.errors import ConfigError, ZooError
from alignsearch.models import SequenceModel

ENTRY_SETTINGS = ("seed", "task", "model", "training")
ENV_ZOO = "ALIGNSEARCH_ZOO"


@dataclass
class ZooEntry:
    """A trained task model, its task, and what its training measured."""

    path: Path
    task: Any
    model: SequenceModel
    metrics: dict[str, Any]
    info: dict[str, Any]


@dataclass
class ModelRequest:
    """A task model asked for by a config: its task, a freshly initialised model and its zoo path."""

    cfg: DictConfig
    task: Any
    model: SequenceModel
    path: Path


def zoo_root(cfg: DictConfig | None = None) -> Path:
    """``cfg.paths.zoo_dir`` if set, else ``$ALIGNSEARCH_ZOO``, else ``./zoo``."""
    configured = OmegaConf.select(cfg, "paths.zoo_dir") if cfg is not None else None
    return Path(configured or os.environ.get(ENV_ZOO) or "zoo").resolve()


def request(cfg: DictConfig) -> ModelRequest:
    """Check and build what ``cfg`` asks for (task, model, seed), without training anything.

    The model is initialised from ``cfg.seed``; its zoo path is
    ``{zoo}/{task.name}/{model.name}/seed{seed}{suffix}``.
    """
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError("seed", seed, "a non-negative integer")
    task = build_task(cfg.task)
    L.seed_everything(seed, verbose=False)
    model = build_model(cfg.model, task.vocab.size)
    path = zoo_root(cfg) / task.name / model.name / f"seed{seed}{settings_suffix(task, model)}"
    return ModelRequest(cfg, task, model, path)


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def load(path: Path | str, task: Any | None = None, snapshot: int | None = None) -> ZooEntry:
    """Load a complete entry; with ``task``, check that the entry was trained on the same vocabulary;
    with ``snapshot``, take the weights kept after that training step instead of the final ones."""
    path = Path(path)
    if not path.is_dir():
        raise ZooError(f"zoo entry {path} does not exist (train it with train_task_model.py)")
    for name in ("entry.json", "config.yaml", "model.pt", "metrics.json"):
        if not (path / name).is_file():
            raise ZooError(
                f"zoo entry {path} is incomplete: {name} is missing (delete the folder to retrain it)"
            )
    try:
        info = json.loads((path / "entry.json").read_text())
        metrics = json.loads((path / "metrics.json").read_text())
        settings = OmegaConf.load(path / "config.yaml")
    except Exception as e:  # noqa: BLE001
        raise ZooError(
            f"zoo entry {path} is corrupt ({type(e).__name__}: {e}); delete the folder to retrain it"
        ) from None
    entry_task = build_task(settings.task)
    if task is not None and tuple(task.vocab.tokens) != tuple(info["vocab"]):
        raise ZooError(
            f"zoo entry {path} has vocabulary {' '.join(info['vocab'])} but task {task.name} needs "
            f"{' '.join(task.vocab.tokens)}; allowed: an entry trained on that task"
        )
    model = build_model(settings.model, entry_task.vocab.size)
    weights = path / "model.pt"
    if snapshot is not None:
        kept = info.get("snapshots", [])
        weights = path / "snapshots" / f"step{snapshot}.pt"
        if snapshot not in kept or not weights.is_file():
            raise ZooError(
                f"snapshot={snapshot} is not allowed: expected a step kept for {path}: "
                f"{', '.join(map(str, kept)) or 'none (train with training.keep_steps=[...] into another zoo)'}"
            )
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as e:  # noqa: BLE001
        raise ZooError(
            f"zoo entry {path}: {weights.name} is corrupt ({type(e).__name__}); delete the folder to retrain it"
        ) from None
    model.eval().requires_grad_(False)
    return ZooEntry(path, entry_task, model, metrics, info)


def get_or_train(
    cfg: DictConfig, *, loggers: list | bool = False, callbacks: list = (), verbose: bool = True
) -> ZooEntry:
    """The zoo entry ``cfg`` asks for, trained first if it is missing.

    Concurrent callers that need the same missing entry wait on its lock: one trains, the others load.
    An interrupted training leaves ``*.partial`` with its last checkpoint, and the next call resumes it.
    """
    req = request(cfg)
    snapshot = cfg.get("snapshot")
    if req.path.is_dir():
        return load(req.path, req.task, snapshot)
    req.path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(lock_path(req.path)):
        if req.path.is_dir():  # trained by another process while we waited
            return load(req.path, req.task, snapshot)
        train_into(req, loggers=loggers, callbacks=callbacks, verbose=verbose)
    return load(req.path, req.task, snapshot)


def train_into(
    req: ModelRequest, *, loggers: list | bool = False, callbacks: list = (), verbose: bool = True
) -> None:
    """Train ``req`` in its ``.partial`` folder (resuming if it holds a checkpoint), then publish it."""
    from alignsearch.training.callbacks import KeepSnapshots
    from alignsearch.training.fit import LAST_CHECKPOINT, check_checkpoint, fit_task_model

    work = partial_path(req.path)
    own = work / "checkpoints" / LAST_CHECKPOINT
    explicit = req.cfg.get("ckpt_path")
    resume = (
        check_checkpoint(Path(explicit))
        if explicit
        else (check_checkpoint(own, "checkpoint") if own.exists() else None)
    )
    if verbose:
        print(f"training {req.path}" + (f" (resuming from {resume})" if resume else ""), flush=True)
    keep = sorted(int(step) for step in req.cfg.training.get("keep_steps") or [])
    if keep:
        callbacks = [*callbacks, KeepSnapshots(keep, work / "snapshots")]
    metrics = fit_task_model(
        req.cfg, req.task, req.model, work, resume_from=resume, loggers=loggers, callbacks=callbacks
    )
    kept = sorted(int(p.stem.removeprefix("step")) for p in (work / "snapshots").glob("step*.pt"))
    settings = OmegaConf.create(  # resolved where they stand: interpolations may point anywhere in cfg
        {
            k: OmegaConf.to_container(req.cfg[k], resolve=True)
            if OmegaConf.is_config(req.cfg[k])
            else req.cfg[k]
            for k in ENTRY_SETTINGS
            if k in req.cfg
        }
    )
    io.save_torch(work / "model.pt", req.model.state_dict())
    io.write_text(work / "config.yaml", OmegaConf.to_yaml(settings, resolve=True))
    io.write_json(work / "metrics.json", metrics)
    io.write_json(
        work / "entry.json",
        {
            "task": req.task.name,
            "model": req.model.name,
            "seed": int(req.cfg.seed),
            "vocab": list(req.task.vocab.tokens),
            "sites": req.model.sites,
            "snapshots": kept,
        },
    )
    os.replace(work, req.path)
