"""Load-or-train: a request for a task model (:func:`request`), and the entry it names, trained first if it
is missing (:func:`get_or_train`): one process trains under the entry's lock while others wait, in a
``.partial`` folder published in one rename, resuming from its last checkpoint or a given one that
records this very entry (:func:`resume_point`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from omegaconf import OmegaConf

from alignsearch import atomic
from alignsearch.components import build_model, build_task
from alignsearch.errors import ConfigError, ZooError
from alignsearch.models import SequenceModel
from alignsearch.seeding import seed_all
from alignsearch.settings import HardwareSettings, TrainingSettings, plain, seed_value
from alignsearch.zoo.entry import ZooEntry
from alignsearch.zoo.loading import file_sha256, load, refuse_links
from alignsearch.zoo.naming import (
    entry_name,
    first_difference,
    identity_of,
    lock_path,
    partial_path,
    zoo_root,
)


@dataclass
class ModelRequest:
    """A task model asked for: its settings, its task, a freshly initialised model and its zoo path."""

    seed: int
    task_config: dict[str, Any]
    """The task's ``_target_`` node (``conf/task``), as plain values."""
    model_config: dict[str, Any]
    """The model's ``_target_`` node (``conf/model``), as plain values."""
    training: TrainingSettings
    hardware: HardwareSettings
    task: Any
    model: SequenceModel
    path: Path
    resume_from: Path | None = None
    """A Lightning checkpoint to start training from instead of the entry's own (``ckpt_path``)."""

    def identity(self) -> dict[str, Any]:
        """What names the entry: seed, task and model settings, and the training settings that change
        the weights."""
        return identity_of(self.seed, self.task_config, self.model_config, self.training)


def request(
    task_config: Mapping,
    model_config: Mapping,
    *,
    seed: int,
    training: TrainingSettings,
    hardware: HardwareSettings,
    root: Path,
    resume_from: str | Path | None = None,
) -> ModelRequest:
    """Check and build the task and model a request names, without training anything.

    The model is initialised from ``seed``; its zoo path is ``{root}/{task.name}/{model.name}/<name>``
    (see :func:`entry_name`).
    """
    seed_value("seed", seed)  # within what every generator takes
    task_node: dict[str, Any] = plain(task_config)
    model_node: dict[str, Any] = plain(model_config)
    task = build_task(task_node)
    seed_all(seed)
    model = build_model(model_node, task.vocab.size)
    path = Path(root) / task.name / model.name / entry_name(seed, task, model, training)
    check_entry_path(path)
    resume = Path(resume_from) if resume_from else None
    return ModelRequest(seed, task_node, model_node, training, hardware, task, model, path, resume)


def model_request(cfg: Any) -> ModelRequest:
    """The request a composed ``train_task_model`` or ``run_alignment`` config makes: its task, model,
    seed, training and hardware settings, zoo folder and checkpoint to resume from (``ckpt_path``)."""
    return request(
        cfg.task,
        cfg.model,
        seed=cfg.get("seed"),
        training=TrainingSettings.parse(cfg.training),
        hardware=HardwareSettings.parse(cfg.hardware),
        root=zoo_root(OmegaConf.select(cfg, "paths.zoo_dir")),
        resume_from=cfg.get("ckpt_path"),
    )


def check_entry_path(path: Path) -> None:
    """A ZooError if something that is not a folder stands where the entry or one of its parents goes."""
    for place in (path, partial_path(path), *path.parents):
        if place.exists() and not place.is_dir():
            raise ZooError(
                f"zoo entry {path} cannot be written: {place} is a file, not a folder; move it away"
            )


def get_or_train(
    req: ModelRequest,
    *,
    snapshot: int | None = None,
    loggers: list | bool = False,
    callbacks: Sequence[Any] = (),
    verbose: bool = True,
) -> ZooEntry:
    """The zoo entry ``req`` (from :func:`request`) names, trained first if it is missing; with
    ``snapshot``, the weights kept after that training step.

    Concurrent callers that need the same missing entry wait on its lock: one trains, the others load.
    An interrupted training leaves ``*.partial`` with its last checkpoint, and the next call resumes it.
    """
    refuse_links(req.path, writing=True)
    if req.path.is_dir():
        return checked_load(req, snapshot)
    try:
        req.path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ZooError(f"zoo entry {req.path} cannot be written: {e.strerror} ({req.path.parent})") from None
    lock = FileLock(lock_path(req.path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"waiting for another process that is training {req.path} (lock {lock.lock_file})", flush=True)
        lock.acquire()
    try:
        if req.path.is_dir():  # trained by another process while we waited
            return checked_load(req, snapshot)
        refuse_links(req.path, writing=True)
        train_into(req, loggers=loggers, callbacks=callbacks, verbose=verbose)
    finally:
        lock.release()
    return checked_load(req, snapshot)


def checked_load(req: ModelRequest, snapshot: int | None = None) -> ZooEntry:
    """The entry ``req`` names, which must hold the snapshots its training settings ask to keep."""
    entry = load(req.path, req, snapshot)
    missing = sorted(set(req.training.keep_steps) - set(entry.info.get("snapshots", [])))
    if missing:
        raise ConfigError(
            "training.keep_steps",
            list(req.training.keep_steps),
            f"steps whose snapshots {req.path} holds ({', '.join(map(str, entry.info.get('snapshots', []))) or 'none'}): "
            "the entry was trained without them; delete it or use another zoo (paths.zoo_dir)",
        )
    return entry


def train_into(
    req: ModelRequest, *, loggers: list | bool = False, callbacks: Sequence[Any] = (), verbose: bool = True
) -> None:
    """Train ``req`` in its ``.partial`` folder (resuming if it holds a checkpoint), then publish it."""
    from alignsearch.engine.accelerator import check_accelerator
    from alignsearch.engine.callbacks import RecordInCheckpoints
    from alignsearch.training.fit import fit_task_model
    from alignsearch.training.snapshots import KeepSnapshots

    check_accelerator(req.hardware)  # before the training starts (and says so)
    work = partial_path(req.path)
    resume = resume_point(req, work)
    if verbose:
        print(f"training {req.path}" + (f" (resuming from {resume})" if resume else ""), flush=True)
    callbacks = [*callbacks, RecordInCheckpoints(CHECKPOINT_ENTRY, req.identity())]
    keep = sorted(req.training.keep_steps)
    if keep:
        callbacks = [*callbacks, KeepSnapshots(keep, work / "snapshots")]
    metrics = fit_task_model(
        req.task,
        req.model,
        work,
        settings=req.training,
        hardware=req.hardware,
        seed=req.seed,
        resume_from=resume,
        loggers=loggers,
        callbacks=callbacks,
    )
    kept = sorted(int(p.stem.removeprefix("step")) for p in (work / "snapshots").glob("step*.pt"))
    training = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(req.training).items()}
    settings = {"seed": req.seed, "task": req.task_config, "model": req.model_config, "training": training}
    atomic.save_torch(work / "model.pt", req.model.state_dict())
    atomic.write_text(work / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(settings)))
    atomic.write_json(work / "metrics.json", metrics)
    atomic.write_json(
        work / "entry.json",
        {
            "task": req.task.name,
            "model": req.model.name,
            "seed": req.seed,
            "vocab": list(req.task.vocab.tokens),
            "sites": req.model.sites,
            "snapshots": kept,
            **weight_digests(work, kept),
        },
    )
    for leftover in work.rglob(".*.tmp"):  # of an atomic write that a kill interrupted earlier
        leftover.unlink()
    os.replace(work, req.path)


def weight_digests(path: Path, kept: list[int]) -> dict[str, Any]:
    """What ``entry.json`` records of an entry's weights files: ``weights_sha256`` (``model.pt``) and
    ``snapshots_sha256`` (``{"100": ...}``, the snapshot of each kept step)."""
    return {
        "weights_sha256": file_sha256(path / "model.pt"),
        "snapshots_sha256": {str(step): file_sha256(path / "snapshots" / f"step{step}.pt") for step in kept},
    }


CHECKPOINT_ENTRY = "alignsearch_entry"
"""The key under which a training's checkpoints record the identity of the entry they train."""


def resume_point(req: ModelRequest, work: Path) -> Path | None:
    """The checkpoint a training of ``req`` in ``work`` resumes from: the training's own (``work``'s
    ``last.ckpt``) or ``req.resume_from`` (``ckpt_path``), whichever is further along (the given one on a
    tie); None to start afresh.

    A given checkpoint must record that it was written while training this very entry (its seed, task,
    model and weight-changing training settings): one of another training would publish its weights
    under this entry's name. A one-line ConfigError names the first setting that differs.
    """
    from alignsearch.engine.trainer import LAST_CHECKPOINT, read_checkpoint

    own = work / "checkpoints" / LAST_CHECKPOINT
    candidates = []
    if req.resume_from is not None:
        state = read_checkpoint(req.resume_from)
        recorded = state.get(CHECKPOINT_ENTRY)
        if recorded is None:
            raise ConfigError(
                "ckpt_path",
                str(req.resume_from),
                f"a checkpoint written while training {req.path.name} (it records no zoo entry)",
            )
        difference = first_difference(recorded, req.identity())
        if difference:
            key, was, asked = difference
            raise ConfigError(
                "ckpt_path",
                str(req.resume_from),
                f"a checkpoint of the training of {req.path.name} (it was written with {key}={was}, "
                f"this entry has {key}={asked})",
            )
        candidates.append((int(state["global_step"]), 1, req.resume_from))
    if own.exists():
        candidates.append((int(read_checkpoint(own, "checkpoint")["global_step"]), 0, own))
    return max(candidates)[2] if candidates else None
