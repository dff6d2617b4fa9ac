"""Atomic writes: a file is either absent or complete, never half written.

The bytes go to a hidden temporary file in the same folder (``.<name>.<random>.tmp``), which is flushed to
disk and then renamed over the target: a process killed mid-write leaves at most that hidden file, never a
partial ``<name>``. The temporary file is created with mode 0666 less the umask, like ``open(path, "w")``,
so the written file has the permissions any other file of the process would have.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

_TRIES = 100


def _create_hidden(path: Path) -> tuple[int, Path]:
    """A new, empty hidden file next to ``path``, opened for writing (its mode: 0666 less the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_TRIES):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name next to {path}")


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_hidden(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path | str, text: str) -> None:
    _atomic(Path(path), lambda f: f.write(text.encode()))


def write_bytes(path: Path | str, data: bytes) -> None:
    _atomic(Path(path), lambda f: f.write(data))


def write_json(path: Path | str, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_torch(path: Path | str, obj: Any) -> None:
    import torch  # here: the rest of this module serves processes that never load torch

    _atomic(Path(path), lambda f: torch.save(obj, f))
