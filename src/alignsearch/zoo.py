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

What names an entry: its seed, and every task, model and training setting that changes the trained
weights (see :class:`alignsearch.settings.TrainingSettings` for the training settings that do not:
``checkpoint_every``, ``eval_batch_size``, ``n_heldout``, ``keep_steps``; hardware settings never do).
Settings that differ from the defaults (the class's for tasks and models, ``conf/training/default.yaml``
for training) appear in the folder name: ``seed11-max_steps100``, ``seed0-d_model32-lr0.002``. A request
finds exactly the entry its settings name or trains it; an entry whose recorded settings (``config.yaml``)
name another folder is refused, and ``python -m alignsearch.zoo migrate <zoo>`` renames such entries
(zoos written before training settings were part of the name).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout
from omegaconf import OmegaConf

from alignsearch import atomic
from alignsearch.components import (
    build_model,
    build_task,
    format_setting,
    non_default_settings,
    settings_suffix,
)
from alignsearch.errors import ConfigError, ZooError
from alignsearch.models import SequenceModel
from alignsearch.models.base import weights_sha256
from alignsearch.search.spec import RunModel
from alignsearch.seeding import seed_all
from alignsearch.settings import TRAINING_DEFAULTS, HardwareSettings, TrainingSettings, plain

ENTRY_SETTINGS = ("seed", "task", "model", "training")
ENTRY_FILES = ("entry.json", "config.yaml", "model.pt", "metrics.json")
ENV_ZOO = "ALIGNSEARCH_ZOO"
MAX_NAME = 120
"""Longer entry names keep their start and end in a hash of the whole (folder names stay portable)."""


@dataclass
class ZooEntry:
    """A trained task model, its task, and what its training measured."""

    path: Path
    task: Any
    model: SequenceModel
    metrics: dict[str, Any]
    info: dict[str, Any]
    weights_sha256: str
    """Hash of the weights file the model was loaded from: what identifies the model in a run's results."""


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


def identity_of(seed: int, task: Any, model: Any, training: TrainingSettings) -> dict[str, Any]:
    return {"seed": seed, "task": plain(task), "model": plain(model), "training": training.identity()}


def entry_name(seed: int, task: Any, model: SequenceModel, training: TrainingSettings) -> str:
    """``seed0``, plus ``-<key><value>`` for each non-default task, model and training setting.

    >>> from alignsearch.tasks import NumericTask
    >>> from alignsearch.models import GRU
    >>> entry_name(3, NumericTask(), GRU(8, d_model=32), TrainingSettings.parse(TRAINING_DEFAULTS))
    'seed3-d_model32'
    """
    name = f"seed{seed}{settings_suffix(task, model)}{training_suffix(training)}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.blake2b(name.encode(), digest_size=6).hexdigest()
    return f"{name[: MAX_NAME - 13]}-{digest}"


def training_suffix(training: TrainingSettings) -> str:
    """``-max_steps100-lr0.002`` for the weight-changing training settings that differ from
    ``conf/training/default.yaml``."""
    return "".join(f"-{key}{format_setting(value)}" for key, value in non_default_training(training).items())


def non_default_training(training: TrainingSettings) -> dict[str, Any]:
    """The weight-changing training settings that differ from ``conf/training/default.yaml``."""
    defaults = TrainingSettings.parse(TRAINING_DEFAULTS).identity()
    return {key: value for key, value in training.identity().items() if not same(value, defaults[key])}


def entry_settings(
    task: Any, model: SequenceModel, training: TrainingSettings | None = None
) -> dict[str, Any]:
    """What names an entry besides its task, model and seed, as flat keys: the non-default task, model and
    (given) training settings, ``{"model.d_model": 64, "training.max_steps": 100}``. A run's results carry
    them, so that runs of other widths or trainings are never taken for seeds of one configuration."""
    out = {f"task.{k}": v for k, v in non_default_settings(task).items()}
    out |= {f"model.{k}": v for k, v in non_default_settings(model).items()}
    if training is not None:
        out |= {f"training.{k}": v for k, v in non_default_training(training).items()}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def same(a: Any, b: Any) -> bool:
    """Equal settings, with ``1`` equal to ``1.0`` and tuples equal to lists."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    numbers = (int, float)
    if (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        return float(a) == float(b)
    return a == b


def first_difference(a: Any, b: Any, key: str = "") -> tuple[str, Any, Any] | None:
    """The first setting (dotted key) where ``a`` and ``b`` differ, with both values."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for k in [*a, *(k for k in b if k not in a)]:
            found = first_difference(a.get(k, "(none)"), b.get(k, "(none)"), f"{key}.{k}" if key else k)
            if found:
                return found
        return None
    return None if same(a, b) else (key, a, b)


def zoo_root(configured: str | Path | None = None) -> Path:
    """``configured`` (``paths.zoo_dir``) if set, else ``$ALIGNSEARCH_ZOO``, else ``./zoo``."""
    return Path(configured or os.environ.get(ENV_ZOO) or "zoo").resolve()


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
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError("seed", seed, "a non-negative integer")
    task_config, model_config = plain(task_config), plain(model_config)
    task = build_task(task_config)
    seed_all(seed)
    model = build_model(model_config, task.vocab.size)
    path = Path(root) / task.name / model.name / entry_name(seed, task, model, training)
    check_entry_path(path)
    resume = Path(resume_from) if resume_from else None
    return ModelRequest(seed, task_config, model_config, training, hardware, task, model, path, resume)


def check_entry_path(path: Path) -> None:
    """A ZooError if something that is not a folder stands where the entry or one of its parents goes."""
    for place in (path, partial_path(path), *path.parents):
        if place.exists() and not place.is_dir():
            raise ZooError(
                f"zoo entry {path} cannot be written: {place} is a file, not a folder; move it away"
            )


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def load(path: Path | str, request: ModelRequest | None = None, snapshot: int | None = None) -> ZooEntry:
    """Load a complete entry.

    Its recorded settings must name its folder (else it is refused); with ``request``, they must be the
    settings the request asks for, on the same vocabulary; with ``snapshot``, the weights kept after that
    training step are loaded instead of the final ones.
    """
    path = Path(path)
    if not path.is_dir():
        raise ZooError(f"zoo entry {path} does not exist (train it with train_task_model.py)")
    for name in ENTRY_FILES:
        if not (path / name).is_file():
            raise ZooError(
                f"zoo entry {path} is incomplete: {name} is missing (delete the folder to retrain it)"
            )
    info, metrics, settings = _read_entry(path)
    try:
        recorded = TrainingSettings.parse(settings["training"])
        entry_task = build_task(settings["task"])
        model = build_model(settings["model"], entry_task.vocab.size)
    except ConfigError as e:
        raise ZooError(
            f"zoo entry {path} is corrupt: config.yaml records {e}; delete the folder to retrain it"
        ) from None
    expected = entry_name(settings["seed"], entry_task, model, recorded)
    if path.name != expected:
        raise ZooError(
            f"zoo entry {path} records settings that name it {expected}, not {path.name} (an entry of an "
            f"older zoo layout: python -m alignsearch.zoo migrate {path.parents[2]} renames it)"
        )
    if request is not None:
        if tuple(request.task.vocab.tokens) != tuple(info["vocab"]):
            raise ZooError(
                f"zoo entry {path} has vocabulary {' '.join(info['vocab'])} but task {request.task.name} "
                f"needs {' '.join(request.task.vocab.tokens)}; allowed: an entry trained on that task"
            )
        found = identity_of(settings["seed"], settings["task"], settings["model"], recorded)
        difference = first_difference(found, request.identity())
        if difference:
            key, was, asked = difference
            raise ZooError(
                f"zoo entry {path} was trained with {key}={was}, but {key}={asked} was asked for; "
                "delete the entry or use another zoo"
            )
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
        content = weights.read_bytes()
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as e:  # noqa: BLE001
        raise ZooError(
            f"zoo entry {path}: {weights.name} is corrupt ({type(e).__name__}); delete the folder to retrain it"
        ) from None
    model.eval().requires_grad_(False)
    return ZooEntry(path, entry_task, model, metrics, info, hashlib.sha256(content).hexdigest())


def short_name(path: Path | str) -> str:
    """``multiobject/gru/seed0``: an entry's path below the zoo's root (how results name the model).

    >>> short_name("/data/zoo/multiobject/gru/seed0")
    'multiobject/gru/seed0'
    """
    return "/".join(Path(path).parts[-3:])


def recorded_training(entry: ZooEntry) -> TrainingSettings:
    """The training settings ``entry`` was trained with (its ``config.yaml``)."""
    _, _, settings = _read_entry(entry.path)
    return TrainingSettings.parse(settings["training"])


def initial_model(entry: ZooEntry) -> SequenceModel:
    """``entry``'s model as it was before training: built from the entry's recorded settings and seed,
    exactly as the zoo built it (the ``untrained`` control's model)."""
    _, _, settings = _read_entry(entry.path)
    task = build_task(settings["task"])
    seed_all(settings["seed"])
    return build_model(settings["model"], task.vocab.size)


def _read_entry(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``entry.json``, ``metrics.json`` and ``config.yaml`` of an entry, checked for the keys they need."""
    try:
        info = json.loads((path / "entry.json").read_text())
        metrics = json.loads((path / "metrics.json").read_text())
        settings = plain(OmegaConf.load(path / "config.yaml"))
    except Exception as e:  # noqa: BLE001
        raise ZooError(
            f"zoo entry {path} is corrupt ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "delete the folder to retrain it"
        ) from None
    needs = {
        "entry.json": (info, ("vocab", "sites")),
        "metrics.json": (metrics, ("steps", "train_seconds")),
        "config.yaml": (settings, ENTRY_SETTINGS),
    }
    for name, (content, keys) in needs.items():
        missing = [k for k in keys if not isinstance(content, dict) or k not in content]
        if missing:
            raise ZooError(
                f"zoo entry {path} is corrupt: {name} lacks {', '.join(missing)}; delete the folder to retrain it"
            )
    if not isinstance(settings["seed"], int) or not all(
        isinstance(settings[k], dict) for k in ENTRY_SETTINGS[1:]
    ):
        raise ZooError(
            f"zoo entry {path} is corrupt: config.yaml is not a set of settings; delete the folder to retrain it"
        )
    return info, metrics, settings


def get_or_train(
    req: ModelRequest,
    *,
    snapshot: int | None = None,
    loggers: list | bool = False,
    callbacks: list = (),
    verbose: bool = True,
) -> ZooEntry:
    """The zoo entry ``req`` (from :func:`request`) names, trained first if it is missing; with
    ``snapshot``, the weights kept after that training step.

    Concurrent callers that need the same missing entry wait on its lock: one trains, the others load.
    An interrupted training leaves ``*.partial`` with its last checkpoint, and the next call resumes it.
    """
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
    req: ModelRequest, *, loggers: list | bool = False, callbacks: list = (), verbose: bool = True
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
        },
    )
    for leftover in work.rglob(".*.tmp"):  # of an atomic write that a kill interrupted earlier
        leftover.unlink()
    os.replace(work, req.path)


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


def migrate(root: Path) -> list[tuple[Path, Path | None]]:
    """Rename every entry under ``root`` whose folder name is not the one its recorded settings give.

    Returns ``(old, new)`` per entry that needed it; ``new`` is None where that name is taken."""
    moves: list[tuple[Path, Path | None]] = []
    for info in sorted(root.glob("*/*/*/entry.json")):
        path = info.parent
        if path.name.endswith(".partial"):
            continue
        try:
            _, _, settings = _read_entry(path)
            task = build_task(settings["task"])
            model = build_model(settings["model"], task.vocab.size)
            name = entry_name(settings["seed"], task, model, TrainingSettings.parse(settings["training"]))
        except (ZooError, ConfigError) as e:
            print(f"skipped {path}: {e}", file=sys.stderr)
            continue
        if name == path.name:
            continue
        target = path.with_name(name)
        if target.exists():
            moves.append((path, None))
            continue
        os.replace(path, target)
        moves.append((path, target))
    return moves


def main(argv: list[str] | None = None) -> int:
    """``python -m alignsearch.zoo migrate [zoo]``: give old entries the names their settings give."""
    parser = argparse.ArgumentParser(prog="python -m alignsearch.zoo", description=main.__doc__)
    parser.add_argument("command", choices=["migrate"])
    parser.add_argument("zoo", nargs="?", type=Path, default=zoo_root())
    args = parser.parse_args(argv)
    try:
        moves = migrate(args.zoo)
    except (ZooError, ConfigError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for old, new in moves:
        print(f"renamed {old} -> {new.name}" if new else f"kept {old}: the entry its settings name exists")
    print(f"{sum(new is not None for _, new in moves)} entries renamed under {args.zoo}")
    return 1 if any(new is None for _, new in moves) else 0


if __name__ == "__main__":
    sys.exit(main())


OWN = "own"
"""``entry.info["origin"]`` of a model brought from elsewhere (``api.own_model``), not trained by the zoo."""


def run_model(entry: ZooEntry, index: int = 0) -> RunModel:
    """``entry`` as an alignment run takes it (model ``index`` of the run): named by its zoo path and
    labelled by its task, model, seed and the settings that name it (training: the first model's only, a
    partner is trained alike); its untrained form is the model as the zoo initialised it, or, for a model
    brought from elsewhere, a re-initialised copy (:func:`reinitialised`)."""
    own = entry.info.get("origin") == OWN
    labels = {"task": entry.info["task"], "model": entry.info["model"], "seed": entry.info["seed"]}
    if not own and hasattr(entry.task, "settings"):
        labels |= entry_settings(entry.task, entry.model, None if index else recorded_training(entry))

    def untrained(seed: int) -> SequenceModel:
        return reinitialised(entry.model, seed + index) if own else initial_model(entry)

    return RunModel(entry.model, short_name(entry.path), entry.task, entry.weights_sha256, labels, untrained)


def reinitialised(model: SequenceModel, seed: int) -> SequenceModel:
    """A copy of ``model`` whose modules' ``reset_parameters()`` ran under ``seed``. A ConfigError if a
    weight is left as it was (a parameter of a module without ``reset_parameters``): the control would
    keep trained weights."""
    import copy

    twin = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in twin.modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
    before = dict(model.named_parameters())
    kept = [n for n, p in twin.named_parameters() if p.numel() > 1 and torch.equal(p, before[n])]
    if kept:
        raise ConfigError(
            "controls",
            "untrained",
            f"a model whose weights its modules' reset_parameters() re-initialise ({', '.join(kept[:3])} "
            "are not): give those modules a reset_parameters(), or leave this control out",
        )
    return twin.eval().requires_grad_(False)


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 over a model's state dict (names, dtypes, shapes and values): what identifies its weights."""
    return weights_sha256(model)
