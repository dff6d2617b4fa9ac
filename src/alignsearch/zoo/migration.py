"""Bringing a zoo written by older versions up to date (``python -m alignsearch.zoo migrate``): entries
renamed to the names their settings give, and the SHA-256 of their weights recorded where ``entry.json``
has none."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from alignsearch import atomic
from alignsearch.components import trusted_modules
from alignsearch.errors import ConfigError, ZooError
from alignsearch.zoo.loading import (
    build_recorded,
    load,
    published_digest,
    read_entry,
    recorded_training_settings,
    refuse_links,
)
from alignsearch.zoo.naming import entry_name


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
            refuse_links(path)
            _, _, settings = read_entry(path)
            task, model = build_recorded(
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
