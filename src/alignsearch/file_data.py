"""Files that others may have written, read as plain data: nothing in them is resolved, imported or run.

A zoo entry's ``config.yaml`` and ``entry.json``, an alignment file's function and layout, a run folder's
records: each is parsed with a safe loader (``yaml.safe_load``, ``json.loads``, ``torch.load`` with
``weights_only``) and its values checked here, before anything is built from them. What is refused, with
one line naming the file and the key:

- an interpolation, escaped or not (``${oc.create:...}``, ``\\${...}``): OmegaConf would resolve it, and a
  resolver can build and run what it names;
- a Hydra instruction (``_partial_``, ``_args_``, ``_recursive_``, ``_convert_``, ...) or a ``_target_``
  anywhere but where the file's form has one (a task, a model, an alignment function, a layout);
- anything but ``None``, booleans, numbers, strings, lists and string-keyed mappings of them, nested more
  than :data:`MAX_DEPTH` deep, or larger than the bounds below.

>>> plain_data({"d_model": 64, "hold_outs": [4, 9]}, "config.yaml", "model")
{'d_model': 64, 'hold_outs': [4, 9]}
>>> plain_data({"d_model": "${oc.env:HOME}"}, "config.yaml", "model")
Traceback (most recent call last):
...
alignsearch.file_data.FileDataError: config.yaml: model.d_model holds an interpolation ('${oc.env:HOME}'), which a file read as data may not
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from alignsearch.errors import shorten

TARGET = "_target_"
HYDRA_KEY = re.compile(r"^_[A-Za-z]+_$")
"""Keys Hydra's ``instantiate`` reads as instructions (``_target_``, ``_partial_``, ``_args_``, ...)."""
INTERPOLATION = "${"
MAX_DEPTH = 8
MAX_ITEMS = 100_000
"""Items a list or mapping of a file may hold (a vocabulary has tens of tokens, a sweep config hundreds)."""
MAX_TEXT = 10_000
"""Characters a string of a file may hold."""
MAX_FILE_BYTES = 16 * 2**20
"""Bytes a settings file (YAML or JSON) may have."""
MAX_INT = 2**63 - 1


class FileDataError(ValueError):
    """A value of a file that is not plain data or not allowed there: ``<file>: <key> <why>``."""

    def __init__(self, file: str | Path, key: str, why: str) -> None:
        self.file, self.key, self.why = str(file), key, why
        super().__init__(f"{file}: {key} {why}")


def read_yaml(path: Path, what: str | None = None) -> Any:
    """A YAML file as plain data, by the safe loader (no tags, no interpolation); a FileDataError for a
    file too large or not YAML."""
    import yaml

    text = _read_text(path, what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise FileDataError(what or path, "the file", f"is not YAML{where}") from None


def read_json(path: Path, what: str | None = None) -> Any:
    """A JSON file as plain data; a FileDataError for a file too large or not JSON."""
    text = _read_text(path, what)
    try:
        return json.loads(text)
    except ValueError as e:
        raise FileDataError(what or path, "the file", f"is not JSON ({shorten(str(e), 80)})") from None


def _read_text(path: Path, what: str | None) -> str:
    size = Path(path).stat().st_size
    if size > MAX_FILE_BYTES:
        raise FileDataError(what or path, "the file", f"has {size} bytes, more than {MAX_FILE_BYTES}")
    try:
        return Path(path).read_text()
    except UnicodeDecodeError:
        raise FileDataError(what or path, "the file", "is not text (UTF-8)") from None


def plain_data(value: Any, file: str | Path, key: str, *, targets: bool = False) -> Any:
    """``value`` if it is plain data a file may hold (see the module's docstring), else a FileDataError
    naming ``file`` and the dotted key. ``targets``: ``value`` is a node whose own ``_target_`` is allowed
    (nested ones never are)."""
    for where, item in _walk(value, key, 0, file):
        if isinstance(item, str):
            if INTERPOLATION in item:
                raise FileDataError(
                    file,
                    where,
                    f"holds an interpolation ({shorten(repr(item), 80)}), which a file read as data may not",
                )
            if len(item) > MAX_TEXT:
                raise FileDataError(
                    file, where, f"is a string of {len(item)} characters (at most {MAX_TEXT})"
                )
        elif isinstance(item, float) and not math.isfinite(item):
            raise FileDataError(file, where, f"is {item}: expected a finite number")
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_INT:
            raise FileDataError(file, where, f"is {shorten(str(item), 40)}: expected an integer below 2**63")
    if isinstance(value, Mapping):
        for name in value:
            if HYDRA_KEY.match(name) and not (targets and name == TARGET):
                raise FileDataError(
                    file,
                    f"{key}.{name}",
                    "is an instruction to build or call code, which a file may not hold",
                )
    return value


def _walk(value: Any, key: str, depth: int, file: str | Path) -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` for ``value`` and everything inside it; nested Hydra keys refused."""
    if depth > MAX_DEPTH:
        raise FileDataError(file, key, f"is nested more than {MAX_DEPTH} deep")
    yield key, value
    if isinstance(value, Mapping):
        if len(value) > MAX_ITEMS:
            raise FileDataError(file, key, f"has {len(value)} entries (at most {MAX_ITEMS})")
        for name, item in value.items():
            if not isinstance(name, str):
                raise FileDataError(file, f"{key}.{name!r}", "is a key that is not a string")
            if INTERPOLATION in name or len(name) > MAX_TEXT:
                yield f"{key}.{name}", name  # a key is checked as the strings are
            if depth > 0 and HYDRA_KEY.match(name):
                raise FileDataError(
                    file,
                    f"{key}.{name}",
                    "is an instruction to build or call code, which a file may not hold",
                )
            yield from _walk(item, f"{key}.{name}", depth + 1, file)
    elif isinstance(value, list | tuple):
        if len(value) > MAX_ITEMS:
            raise FileDataError(file, key, f"has {len(value)} items (at most {MAX_ITEMS})")
        for i, item in enumerate(value):
            yield from _walk(item, f"{key}[{i}]", depth + 1, file)
    elif value is not None and not isinstance(value, bool | int | float | str):
        raise FileDataError(file, key, f"is a {type(value).__name__}: expected plain data")


def exact_keys(
    value: Any, file: str | Path, key: str, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``value`` as a mapping holding every ``required`` key and no key outside ``required`` and
    ``optional``; else a FileDataError naming the first key that is missing or unknown."""
    if not isinstance(value, Mapping):
        raise FileDataError(file, key, f"is a {type(value).__name__}: expected a mapping")
    missing = [k for k in required if k not in value]
    if missing:
        raise FileDataError(file, key, f"lacks {', '.join(missing)}")
    unknown = [k for k in value if k not in required and k not in optional]
    if unknown:
        known = ", ".join((*required, *optional))
        raise FileDataError(file, f"{key}.{unknown[0]}", f"is not a key of this file (known: {known})")
    return dict(value)


def no_symlinks(root: Path, path: Path, what: str) -> None:
    """A FileDataError if ``path`` or a folder between ``root`` (itself allowed to be a link: the user's
    choice) and it is a symbolic link: files inside the zoo and run folders are never read or written
    through one (a link could send a write anywhere, or loop)."""
    root, path = Path(root), Path(path)
    try:
        relative = path.relative_to(root)
    except ValueError:
        relative = Path(path.name)
        root = path.parent
    current = root
    for part in relative.parts:
        current = current / part
        if current.is_symlink():
            raise FileDataError(
                what,
                str(current),
                f"is a symbolic link (to {shorten(os.readlink(current), 80)}): links inside it are refused; "
                "replace it with the folder or file itself",
            )


def no_symlinks_below(folder: Path, what: str) -> None:
    """A FileDataError if anything below ``folder`` (at any depth) is a symbolic link."""
    for where, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            path = Path(where) / name
            if path.is_symlink():
                raise FileDataError(
                    what,
                    str(path),
                    f"is a symbolic link (to {shorten(os.readlink(path), 80)}): links inside it are refused; "
                    "replace it with the folder or file itself",
                )
