"""The model zoo: where trained task models live, and load-or-train with a file lock.

Layout (the root is ``paths.zoo_dir``, by default ``$ALIGNSEARCH_ZOO`` or ``./zoo``)::

    zoo/multiobject/gru/seed0/            task / model / seed (+ "-key value" for non-default settings)
        model.pt                          state dict, loadable with torch.load(weights_only=True)
        config.yaml                       resolved task, model, training and seed settings
        metrics.json                      val/heldout trial and token accuracy, steps, train_seconds
        entry.json                        names, vocabulary, sites, snapshots and the SHA-256 of each
                                          weights file (checked when loading)
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

What loading trusts: the weights are read as data (``weights_only``) and must be the bytes the entry was
published with (``entry.json``'s ``weights_sha256``, and ``snapshots_sha256`` per kept step; an entry of
an older zoo has none and loads unchecked until ``migrate`` records them). The task and model that
``config.yaml`` names are built only if they are classes of alignsearch or of modules your own configs name
or ``$ALIGNSEARCH_TRUSTED_MODULES`` lists: a zoo shared by others cannot make loading call anything else.
Every file of an entry is read as data (:mod:`alignsearch.file_data`): a safe loader, no interpolation,
the keys each file may hold, plain values; the task and model are built from their settings through
:func:`alignsearch.components.from_data`, never by Hydra. Symbolic links inside the zoo are refused, and
nothing is written through one.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
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
    from_data,
    non_default_settings,
    settings_suffix,
    target_modules,
    trusted_modules,
)
from alignsearch.errors import ConfigError, ZooError, shorten
from alignsearch.file_data import (
    FileDataError,
    exact_keys,
    no_symlinks,
    no_symlinks_below,
    plain_data,
    read_json,
    read_yaml,
)
from alignsearch.models import SequenceModel
from alignsearch.models.base import weights_sha256
from alignsearch.naming import with_digest
from alignsearch.seeding import seed_all
from alignsearch.settings import TRAINING_DEFAULTS, HardwareSettings, TrainingSettings, plain, seed_value

ENTRY_SETTINGS = ("seed", "task", "model", "training")
ENTRY_FILES = ("entry.json", "config.yaml", "model.pt", "metrics.json")
ENV_ZOO = "ALIGNSEARCH_ZOO"
MAX_NAME = 120
"""Longer entry names keep their start and end in a hash of the whole (folder names stay portable)."""
ENTRY_DIGEST_BYTES = 6
"""The size of that hash (12 hex digits): existing zoos are named with it."""


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
    trusted: tuple[str, ...] = field(default=(), repr=False)
    """The modules whose classes its ``config.yaml`` could name when it was loaded (what
    :func:`initial_model` builds it again under); empty: :func:`alignsearch.components.trusted_modules`."""


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
    return with_digest(name, MAX_NAME, ENTRY_DIGEST_BYTES)


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
    seed_value("seed", seed)  # within what every generator takes
    task_config, model_config = plain(task_config), plain(model_config)
    task = build_task(task_config)
    seed_all(seed)
    model = build_model(model_config, task.vocab.size)
    path = Path(root) / task.name / model.name / entry_name(seed, task, model, training)
    check_entry_path(path)
    resume = Path(resume_from) if resume_from else None
    return ModelRequest(seed, task_config, model_config, training, hardware, task, model, path, resume)


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


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def load(path: Path | str, request: ModelRequest | None = None, snapshot: int | None = None) -> ZooEntry:
    """Load a complete entry.

    Its recorded settings must name its folder (else it is refused); with ``request``, they must be the
    settings the request asks for, on the same vocabulary; with ``snapshot``, the weights kept after that
    training step are loaded instead of the final ones.

    The entry's files are read as data (:func:`_read_entry`), and the task and model that ``config.yaml``
    records are built from their settings only if they are trusted classes of their kind
    (:func:`_build_recorded`; the modules the request's own task and model name are trusted too) and no
    larger than the weights file; no file of the entry, and no folder, may be a symbolic link. The
    weights file must have the SHA-256 that ``entry.json`` records (an entry of an older zoo records none:
    ``python -m alignsearch.zoo migrate`` adds it). Each refusal is one ZooError line naming the entry.
    """
    path = Path(path)
    if not path.is_dir():
        raise ZooError(f"zoo entry {path} does not exist (train it with train_task_model.py)")
    _refuse_links(path)
    for name in ENTRY_FILES:
        if not (path / name).is_file():
            raise ZooError(
                f"zoo entry {path} is incomplete: {name} is missing (delete the folder to retrain it)"
            )
    info, metrics, settings = _read_entry(path)
    trusted = trusted_modules(
        also=() if request is None else target_modules([request.task_config, request.model_config])
    )
    entry_task, model = _build_recorded(
        path, settings, trusted, weights_bytes=(path / "model.pt").stat().st_size
    )
    recorded = recorded_training_settings(path, settings)
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
    _check_entry_record(path, info, settings, entry_task, model)
    weights = path / "model.pt"
    if snapshot is not None:
        kept = info.get("snapshots", [])
        weights = path / "snapshots" / f"step{snapshot}.pt"
        if snapshot not in kept or not weights.is_file():
            raise ZooError(
                f"snapshot={snapshot} is not allowed: expected a step kept for {path}: "
                f"{', '.join(map(str, kept)) or 'none (train with training.keep_steps=[...] into another zoo)'}"
            )
    name = weights.relative_to(path).as_posix()
    try:
        content = weights.read_bytes()
    except OSError as e:
        raise ZooError(f"zoo entry {path}: {name} cannot be read ({e.strerror})") from None
    digest = hashlib.sha256(content).hexdigest()
    published = published_digest(info, snapshot)
    if published is not None and digest != published:
        raise ZooError(
            f"zoo entry {path}: {name} is not the file the entry was published with (its SHA-256 is "
            f"{digest[:12]}..., entry.json records {published[:12]}...); put the entry's own {name} back "
            "or delete the folder to retrain it"
        )
    try:
        state = torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as e:  # noqa: BLE001
        raise ZooError(
            f"zoo entry {path}: {name} is corrupt ({type(e).__name__}); delete the folder to retrain it"
        ) from None
    model.eval().requires_grad_(False)
    return ZooEntry(path, entry_task, model, metrics, info, digest, trusted)


def published_digest(info: Mapping[str, Any], snapshot: int | None = None) -> str | None:
    """The SHA-256 ``entry.json`` records for the entry's ``model.pt`` (or the snapshot of step
    ``snapshot``); None for an entry published before digests were recorded (``migrate`` adds them)."""
    if snapshot is None:
        return info.get("weights_sha256")
    return (info.get("snapshots_sha256") or {}).get(str(snapshot))


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _build_recorded(
    path: Path, settings: Mapping[str, Any], trusted: tuple[str, ...], *, weights_bytes: int | None = None
) -> tuple[Any, SequenceModel]:
    """The task and model the entry's ``config.yaml`` records, built from its settings as data
    (:func:`alignsearch.components.from_data`: trusted classes of their kind, known settings, no
    interpolation); with ``weights_bytes`` (the size of the weights file), a model whose weights would not
    fit in that file is refused before it is built for real. One ZooError line for anything refused."""
    from alignsearch.tasks.protocol import Task

    try:
        task = from_data(settings["task"], Task, "task", CONFIG_FILE, trusted)
        if weights_bytes is not None:
            _check_model_size(settings["model"], task.vocab.size, trusted, weights_bytes)
        model = from_data(
            settings["model"], SequenceModel, "model", CONFIG_FILE, trusted, vocab_size=task.vocab.size
        )
    except FileDataError as e:
        raise ZooError(f"zoo entry {path}: {e}") from None
    except ConfigError as e:
        raise ZooError(
            f"zoo entry {path} is corrupt: config.yaml records {e}; delete the folder to retrain it"
        ) from None
    return task, model


def _check_model_size(
    node: Mapping[str, Any], vocab_size: int, trusted: tuple[str, ...], weights_bytes: int
) -> None:
    """A FileDataError if the model ``node`` describes has more bytes of parameters and buffers than the
    entry's weights file holds (built first on the ``meta`` device, which allocates nothing): a file
    cannot ask for a model larger than the weights it ships. A model that cannot be built there is
    built for real (its class is trusted; only its size was in question)."""
    try:
        with torch.device("meta"):
            meta = from_data(node, SequenceModel, "model", CONFIG_FILE, trusted, vocab_size=vocab_size)
    except (FileDataError, ConfigError):
        raise
    except Exception:  # noqa: BLE001 - a model whose construction needs real tensors
        return
    tensors = [*meta.parameters(), *meta.buffers()]
    size = sum(t.numel() * t.element_size() for t in tensors)
    if size > weights_bytes:
        raise FileDataError(
            CONFIG_FILE,
            "model",
            f"describes a model of {size} bytes of weights, but model.pt has {weights_bytes}",
        )


def _check_entry_record(
    path: Path, info: Mapping[str, Any], settings: Mapping[str, Any], task: Any, model: SequenceModel
) -> None:
    """A ZooError unless ``entry.json`` says what the built task and model are: their names (which are
    also the entry's folders), the seed, the vocabulary and the sites."""
    expected = {
        "task": task.name,
        "model": model.name,
        "seed": settings["seed"],
        "vocab": list(task.vocab.tokens),
        "sites": dict(model.sites),
    }
    for key, value in expected.items():
        if key in info and not same(info[key], value):
            raise ZooError(
                f"zoo entry {path}: entry.json: {key}={shorten(str(info[key]), 80)} is not what config.yaml "
                f"builds ({shorten(str(value), 80)}); delete the folder to retrain it"
            )
    if (path.parent.parent.name, path.parent.name) != (task.name, model.name):
        raise ZooError(
            f"zoo entry {path} holds a {task.name} {model.name}, which belongs in "
            f"{task.name}/{model.name}/{path.name} of the zoo; move it there"
        )


def _refuse_links(path: Path, *, writing: bool = False) -> None:
    """A ZooError if the entry's folder (or its task and model folders, inside the zoo's root), or anything
    in it, is a symbolic link; ``writing``: the same for its ``.partial`` folder and its lock, before
    anything is written there."""
    root = path.parents[2] if len(path.parents) > 2 else path.parent
    places = [path, partial_path(path), lock_path(path)] if writing else [path]
    try:
        for place in places:
            no_symlinks(root, place, f"zoo entry {path}")
            if place.is_dir():
                no_symlinks_below(place, f"zoo entry {path}")
    except FileDataError as e:
        raise ZooError(str(e)) from None


def short_name(path: Path | str) -> str:
    """``multiobject/gru/seed0``: an entry's path below the zoo's root (how results name the model).

    >>> short_name("/data/zoo/multiobject/gru/seed0")
    'multiobject/gru/seed0'
    """
    return "/".join(Path(path).parts[-3:])


def recorded_training(entry: ZooEntry) -> TrainingSettings:
    """The training settings ``entry`` was trained with (its ``config.yaml``)."""
    _, _, settings = _read_entry(entry.path)
    return recorded_training_settings(entry.path, settings)


def recorded_training_settings(path: Path, settings: Mapping[str, Any]) -> TrainingSettings:
    """The training settings an entry's ``config.yaml`` records, checked by their rules (a ZooError line
    for a value they refuse)."""
    try:
        return TrainingSettings.parse(settings["training"])
    except ConfigError as e:
        raise ZooError(
            f"zoo entry {path} is corrupt: config.yaml records {e.under('training')}; "
            "delete the folder to retrain it"
        ) from None


def initial_model(entry: ZooEntry) -> SequenceModel:
    """``entry``'s model as it was before training: built from the entry's recorded settings and seed,
    exactly as the zoo built it (the ``untrained`` control's model)."""
    _, _, settings = _read_entry(entry.path)
    trusted = entry.trusted or trusted_modules()
    task, _ = _build_recorded(entry.path, settings, trusted)
    seed_all(settings["seed"])
    return from_data(
        settings["model"], SequenceModel, "model", CONFIG_FILE, trusted, vocab_size=task.vocab.size
    )


CONFIG_FILE = "config.yaml"
ENTRY_INFO_KEYS = ("task", "model", "seed", "snapshots", "weights_sha256", "snapshots_sha256")
"""What ``entry.json`` may hold besides ``vocab`` and ``sites`` (older entries lack some)."""
MAX_SNAPSHOTS = 10_000


def _read_entry(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``entry.json``, ``metrics.json`` and ``config.yaml`` of an entry, read as data (safe loaders, no
    interpolation) and checked key by key: the keys each must hold, no others, plain values. A ZooError
    names the file and the key of the first thing refused."""
    try:
        info = read_json(path / "entry.json", "entry.json")
        metrics = read_json(path / "metrics.json", "metrics.json")
        settings = read_yaml(path / CONFIG_FILE, CONFIG_FILE)
        needs = {
            "entry.json": (info, ("vocab", "sites")),
            "metrics.json": (metrics, ("steps", "train_seconds")),
            CONFIG_FILE: (settings, ENTRY_SETTINGS),
        }
        for name, (content, keys) in needs.items():
            missing = [k for k in keys if not isinstance(content, dict) or k not in content]
            if missing:
                raise ZooError(
                    f"zoo entry {path} is corrupt: {name} lacks {', '.join(missing)}; delete the folder to retrain it"
                )
        exact_keys(settings, CONFIG_FILE, "config", ENTRY_SETTINGS)
        exact_keys(info, "entry.json", "entry", ("vocab", "sites"), ENTRY_INFO_KEYS)
        plain_data(info, "entry.json", "entry")
        plain_data(metrics, "metrics.json", "metrics")
        plain_data(settings["training"], CONFIG_FILE, "training")
        _check_info_forms(info)
    except FileDataError as e:
        raise ZooError(f"zoo entry {path}: {e}") from None
    except OSError as e:
        raise ZooError(f"zoo entry {path} cannot be read ({e.strerror}: {e.filename})") from None
    if (
        not isinstance(settings["seed"], int)
        or isinstance(settings["seed"], bool)
        or not all(isinstance(settings[k], dict) for k in ENTRY_SETTINGS[1:])
    ):
        raise ZooError(
            f"zoo entry {path} is corrupt: config.yaml is not a set of settings; delete the folder to retrain it"
        )
    snapshot_digests = info.get("snapshots_sha256", {})
    digests = [info["weights_sha256"]] if "weights_sha256" in info else []
    digests += list(snapshot_digests.values()) if isinstance(snapshot_digests, dict) else [None]
    if not all(isinstance(d, str) and SHA256.fullmatch(d) for d in digests):
        raise ZooError(
            f"zoo entry {path} is corrupt: entry.json's weights_sha256 or snapshots_sha256 is not a SHA-256; "
            "delete the folder to retrain it"
        )
    return info, metrics, settings


def _check_info_forms(info: Mapping[str, Any]) -> None:
    """A FileDataError unless ``entry.json``'s values have their forms: ``vocab`` a list of token strings,
    ``sites`` names to widths, ``snapshots`` a list of steps."""
    vocab, sites = info["vocab"], info["sites"]
    if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
        raise FileDataError("entry.json", "entry.vocab", "is not a list of token strings")
    if not isinstance(sites, dict) or not all(
        isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in sites.values()
    ):
        raise FileDataError("entry.json", "entry.sites", "is not a mapping of site names to widths")
    snapshots = info.get("snapshots", [])
    if (
        not isinstance(snapshots, list)
        or len(snapshots) > MAX_SNAPSHOTS
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in snapshots)
    ):
        raise FileDataError("entry.json", "entry.snapshots", "is not a list of training steps")


SHA256 = re.compile(r"[0-9a-f]{64}")


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
    _refuse_links(req.path, writing=True)
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
        _refuse_links(req.path, writing=True)
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


@dataclass
class Migration:
    """What :func:`migrate` changed in a zoo."""

    renamed: list[tuple[Path, Path | None]]
    """``(old, new)`` per entry whose name was not the one its settings give; ``new`` is None where that
    name is taken (the entry is left as it was)."""
    recorded: list[tuple[Path, list[str]]]
    """``(entry, files)`` per entry given the SHA-256 of those weights files (``model.pt``,
    ``snapshots/step<N>.pt``) in its ``entry.json``."""


def migrate(root: Path) -> Migration:
    """Bring the entries under ``root`` written by older versions up to date: rename every entry whose
    folder name is not the one its recorded settings give, and record in ``entry.json`` the SHA-256 of
    the weights files it has none for (after loading the entry, which checks them). Nothing else is
    renamed or rewritten, and a second run changes nothing. An entry that cannot be read is left as it is,
    with a line on stderr."""
    done = Migration([], [])
    for info in sorted(root.glob("*/*/*/entry.json")):
        path = info.parent
        if path.name.endswith(".partial"):
            continue
        try:
            _refuse_links(path)
            _, _, settings = _read_entry(path)
            task, model = _build_recorded(
                path, settings, trusted_modules(), weights_bytes=(path / "model.pt").stat().st_size
            )
            name = entry_name(settings["seed"], task, model, recorded_training_settings(path, settings))
        except (ZooError, ConfigError, OSError) as e:
            print(f"skipped {path}: {e}", file=sys.stderr)
            continue
        if name != path.name:
            target = path.with_name(name)
            if target.exists():
                done.renamed.append((path, None))
                continue
            os.replace(path, target)
            done.renamed.append((path, target))
            path = target
        try:
            files = record_digests(path)
        except ZooError as e:
            print(f"skipped {path}: {e}", file=sys.stderr)
            continue
        if files:
            done.recorded.append((path, files))
    return done


def record_digests(path: Path) -> list[str]:
    """Record in the entry's ``entry.json`` the SHA-256 of each weights file it has none for, once the
    entry has loaded with them (``model.pt``, then each kept snapshot into the same model); the files
    recorded (none if nothing was missing). A ZooError if the entry does not load."""
    info = json.loads((path / "entry.json").read_text())
    kept = [int(step) for step in info.get("snapshots", [])]
    missing_snapshots = [step for step in kept if published_digest(info, step) is None]
    if published_digest(info) is not None and not missing_snapshots:
        return []
    entry = load(path)
    files = []
    if published_digest(info) is None:
        info["weights_sha256"] = entry.weights_sha256
        files.append("model.pt")
    snapshot_digests = dict(info.get("snapshots_sha256") or {})
    for step in missing_snapshots:
        weights = path / "snapshots" / f"step{step}.pt"
        try:
            content = weights.read_bytes()
            entry.model.load_state_dict(
                torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
            )
        except Exception as e:  # noqa: BLE001
            raise ZooError(
                f"zoo entry {path}: snapshots/{weights.name} is corrupt ({type(e).__name__}); "
                "delete the folder to retrain it"
            ) from None
        snapshot_digests[str(step)] = hashlib.sha256(content).hexdigest()
        files.append(f"snapshots/{weights.name}")
    if kept or "snapshots_sha256" in info:
        info["snapshots_sha256"] = snapshot_digests
    atomic.write_json(path / "entry.json", info)
    return files


def main(argv: list[str] | None = None) -> int:
    """``python -m alignsearch.zoo migrate [zoo]``: give old entries the names their settings give, and
    record the SHA-256 of their weights where ``entry.json`` has none."""
    parser = argparse.ArgumentParser(prog="python -m alignsearch.zoo", description=main.__doc__)
    parser.add_argument("command", choices=["migrate"])
    parser.add_argument("zoo", nargs="?", type=Path, default=zoo_root())
    args = parser.parse_args(argv)
    try:
        done = migrate(args.zoo)
    except (ZooError, ConfigError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for old, new in done.renamed:
        print(f"renamed {old} -> {new.name}" if new else f"kept {old}: the entry its settings name exists")
    for path, files in done.recorded:
        print(f"recorded the SHA-256 of {', '.join(files)} in {path / 'entry.json'}")
    print(f"{sum(new is not None for _, new in done.renamed)} entries renamed under {args.zoo}")
    print(f"{len(done.recorded)} entries given the SHA-256 of their weights under {args.zoo}")
    return 1 if any(new is None for _, new in done.renamed) else 0


if __name__ == "__main__":
    sys.exit(main())


OWN = "own"
"""``entry.info["origin"]`` of a model brought from elsewhere (``api.own_model``), not trained by the zoo."""


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
