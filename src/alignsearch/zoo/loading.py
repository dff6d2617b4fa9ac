"""Reading, checking and loading a complete zoo entry: its files read as data and checked key by key, the
task and model its ``config.yaml`` records built from trusted classes only, its weights the bytes
``entry.json`` records (see :mod:`alignsearch.zoo` for what loading trusts)."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from alignsearch.components import from_data, target_modules, trusted_modules
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
from alignsearch.seeding import seed_all
from alignsearch.settings import TrainingSettings
from alignsearch.zoo.entry import ZooEntry
from alignsearch.zoo.naming import entry_name, first_difference, identity_of, lock_path, partial_path, same

if TYPE_CHECKING:
    from alignsearch.zoo.training import ModelRequest

ENTRY_SETTINGS = ("seed", "task", "model", "training")
ENTRY_FILES = ("entry.json", "config.yaml", "model.pt", "metrics.json")


def load(path: Path | str, request: ModelRequest | None = None, snapshot: int | None = None) -> ZooEntry:
    """Load a complete entry.

    Its recorded settings must name its folder (else it is refused); with ``request``, they must be the
    settings the request asks for, on the same vocabulary; with ``snapshot``, the weights kept after that
    training step are loaded instead of the final ones.

    The entry's files are read as data (:func:`read_entry`), and the task and model that ``config.yaml``
    records are built from their settings only if they are trusted classes of their kind
    (:func:`build_recorded`; the modules the request's own task and model name are trusted too) and no
    larger than the weights file; no file of the entry, and no folder, may be a symbolic link. The
    weights file must have the SHA-256 that ``entry.json`` records (an entry of an older zoo records none:
    ``python -m alignsearch.zoo migrate`` adds it). Each refusal is one ZooError line naming the entry.
    """
    path = Path(path)
    if not path.is_dir():
        raise ZooError(f"zoo entry {path} does not exist (train it with train_task_model.py)")
    refuse_links(path)
    for name in ENTRY_FILES:
        if not (path / name).is_file():
            raise ZooError(
                f"zoo entry {path} is incomplete: {name} is missing (delete the folder to retrain it)"
            )
    info, metrics, settings = read_entry(path)
    trusted = trusted_modules(
        also=() if request is None else target_modules([request.task_config, request.model_config])
    )
    entry_task, model = build_recorded(
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


def build_recorded(
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


def refuse_links(path: Path, *, writing: bool = False) -> None:
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


def recorded_training(entry: ZooEntry) -> TrainingSettings:
    """The training settings ``entry`` was trained with (its ``config.yaml``)."""
    _, _, settings = read_entry(entry.path)
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
    _, _, settings = read_entry(entry.path)
    trusted = entry.trusted or trusted_modules()
    task, _ = build_recorded(entry.path, settings, trusted)
    seed_all(settings["seed"])
    return from_data(
        settings["model"], SequenceModel, "model", CONFIG_FILE, trusted, vocab_size=task.vocab.size
    )


CONFIG_FILE = "config.yaml"
ENTRY_INFO_KEYS = ("task", "model", "seed", "snapshots", "weights_sha256", "snapshots_sha256")
"""What ``entry.json`` may hold besides ``vocab`` and ``sites`` (older entries lack some)."""
MAX_SNAPSHOTS = 10_000


def read_entry(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
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
