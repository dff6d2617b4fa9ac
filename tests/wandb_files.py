"""Read an offline W&B run file (``run-<id>.wandb``): a LevelDB-style log of protobuf records."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

BLOCK = 32768
HEADER = 7  # ":W&B", magic 0xBEE1, version
CHUNK_HEADER = 7  # crc32, length, type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[bytes]:
    """The raw records of the log, chunks joined."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a W&B run file"
    out, pending, pos = [], b"", HEADER
    while pos + CHUNK_HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK_HEADER:  # block trailer padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + CHUNK_HEADER])
        chunk = data[pos + CHUNK_HEADER : pos + CHUNK_HEADER + length]
        pos += CHUNK_HEADER + length
        if kind == FULL:
            out.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            out.append(pending + chunk)
        elif length == 0:
            break
    return out


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
