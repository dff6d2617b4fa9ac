"""Read an offline W&B run file (``run-<id>.wandb``): a LevelDB-style log of protobuf records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alignsearch.loggers import run_file_records


def records(path: Path) -> list[bytes]:
    """The raw records of the log, chunks joined (:func:`alignsearch.loggers.run_file_records`)."""
    assert path.read_bytes()[:4] == b":W&B", "not a W&B run file"
    return run_file_records(path)


def _key(item) -> str:
    """An item's key: plain, or (for keys with slashes) its nested parts joined."""
    return item.key or "/".join(item.nested_key)


def run_contents(path: Path) -> dict[str, Any]:
    """Summary values, config values, history rows (JSON text) and the run's group, job type and tags."""
    from wandb.proto import wandb_internal_pb2 as pb

    found: dict[str, Any] = {"summary": {}, "config": {}, "history": []}
    for raw in records(path):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "summary":
            found["summary"] |= {_key(item): item.value_json for item in record.summary.update}
        elif kind == "history":
            found["history"].append({_key(item): item.value_json for item in record.history.item})
        elif kind == "config":
            found["config"] |= {_key(item): item.value_json for item in record.config.update}
        elif kind == "run":
            found |= {
                "group": record.run.run_group,
                "job_type": record.run.job_type,
                "tags": list(record.run.tags),
            }
            found["config"] |= {_key(item): item.value_json for item in record.run.config.update}
    return found
