"""The whole ``results.json`` of an alignment run as one type, and the words a run's status is said in.

    results = RunResults.read(run_dir / "results.json")  # a FileDataError naming the file and key if not one
    results.records[0].iia, results.config["seed"], results.headline_iia
    atomic.write_json(path, results.to_json())         # what the run core writes

Every reader and writer of ``results.json`` goes through :class:`RunResults`: the run core (writing, and
finding a finished run in its folder), the report, the scan, the command line's lines. A file is data
from others: :meth:`RunResults.from_json` checks every key and value and refuses what is not a run's
results with one line, ``<file>: <key> <why>`` (:class:`~alignsearch.file_data.FileDataError`).

The form (``schema`` :data:`~alignsearch.search.records.SCHEMA`), in the order it is written::

    {"schema": 7,
     "config": {...},                  # the flat choices (task, model, alignment, seed, layer, ...)
     "steps": 1000, "best_step": 900, "train_seconds": 41.2,
     "learned_units": {"count": 8.0},  # each variable's subspace size (learned by alignment=boundless)
     "task_accuracy": [0.99],          # each aligned task model's trial accuracy (null on text)
     "records": [{...}],               # one AlignmentRecord per direction and variable
     "identity": {"models": [...], "settings_sha256": "..."},   # what the results belong to
     "seconds": {"pairs": 0.4, "steps": 35.1, ...},             # where the wall time went
     "data": {...}}                    # text runs only: what was read of the pairs

Files of an older form still read (:data:`~alignsearch.search.records.SCHEMA` says what each added): 1
(no ``schema`` key; early ones without ``task_accuracy`` or ``identity``), 2 (without ``seconds``), 3
(records without the controls' divergence), 4 (records without their numbers of pairs and intervals), 5
(controls without theirs), 6 (the IIA by position without its pairs and intervals);
what a file lacks reads as None (a record's missing
measures as :meth:`AlignmentRecord.from_json` gives them), and :meth:`RunResults.to_json` writes the
current form. A finished run has a ``config`` and at least one record; every other key may be missing.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from alignsearch.errors import shorten
from alignsearch.file_data import FileDataError, read_json
from alignsearch.search.records import (
    CONTROL_DIVERGENCE_PREFIX,
    CONTROL_FIELDS,
    CONTROL_INTERVAL_PREFIXES,
    CONTROL_PREFIX,
    INTERVALS,
    PAIR_COUNTS,
    SCHEMA,
    AlignmentRecord,
)


class RunStatus(str, Enum):
    """How a run (or a sweep's job) ended, in the words the lines and ``summary.csv`` print.

    >>> f"{RunStatus.ALREADY_DONE}: outputs/run/results.json", RunStatus("failed") is RunStatus.FAILED
    ('already done: outputs/run/results.json', True)
    """

    DONE = "done"
    """Ran and wrote its results."""
    ALREADY_DONE = "already done"
    """Found its finished results (the same models and settings) and ran nothing."""
    FAILED = "failed"
    """Stopped by an error (a sweep's job: its traceback in ``error.txt``)."""
    INTERRUPTED = "interrupted"
    """Stopped by a signal (a sweep's job: where it stopped in ``error.txt``; a rerun resumes)."""
    REQUEUED = "requeued"
    """Stopped by Slurm to run again later (a preemption, a time limit): it resumes by itself."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


KEYS = (
    "schema",
    "config",
    "steps",
    "best_step",
    "train_seconds",
    "learned_units",
    "task_accuracy",
    "records",
    "identity",
    "seconds",
    "data",
)
"""The keys of ``results.json``, in the order they are written."""
DIRECTION = re.compile(r"\d+>\d+")
"""A record's ``direction``: ``<source model index>><target model index>``."""
RECORD_REQUIRED = ("variable", "iia")
"""What every record holds (files of every schema do); its other keys take their defaults."""
RECORD_STRINGS = ("source", "target", "variable")
RECORD_OPTIONAL_STRINGS = ("loss", "source_variable", "target_variable", "pairs_sha256")
RECORD_OPTIONAL_NUMBERS = (
    "iia_heldout",
    "iia_test",
    "token_iia",
    "iia_step0",
    "cl_loss",
    "cl_divergence",
    "divergence",
    "divergence_floor",
    "divergence_top",
    "divergence_top_floor",
)
RECORD_BOUNDS = tuple(key for keys in INTERVALS.values() for key in keys[1:])
"""The bounds of a record's 95% intervals (schema 5): each a share, from 0 to 1, or null."""
RECORD_KEYS = tuple(f.name for f in dataclasses.fields(AlignmentRecord) if f.name not in CONTROL_FIELDS)
"""A record's keys in its JSON form, but the controls' (``iia_control_<name>``, ``divergence_control_<name>``)."""


@dataclass
class RunResults:
    """A finished alignment run: what its ``results.json`` holds (see the module's docstring)."""

    config: dict[str, Any]
    """The run's settings as one flat dict (what the report and dashboards pivot on)."""
    records: list[AlignmentRecord]
    """One per direction and variable."""
    steps: int | None = None
    """Training steps run."""
    best_step: int | None = None
    """The step of the kept alignment (the best validation IIA)."""
    train_seconds: float | None = None
    learned_units: dict[str, float] | None = None
    """Each variable's subspace size (fractional where the layout learns it)."""
    task_accuracy: Sequence[float | None] | None = None
    """Each aligned task model's trial accuracy on its task, as aligned (None on text)."""
    identity: dict[str, Any] | None = None
    """What the results belong to: each model's weights (and definition) digest, the data's, the
    settings'; a run in the same folder reuses them only when it matches (None: files before it)."""
    seconds: dict[str, float] | None = None
    """Where the run's wall time went, by phase (None: files before schema 3)."""
    data: dict[str, Any] | None = None
    """Text runs: what was read of the pairs (rows, pairs per split, rows skipped and why)."""

    @property
    def headline_iia(self) -> float | None:
        """The mean validation IIA over the trained records (what a sweep's line shows); None without one.

        >>> RunResults({}, [AlignmentRecord.from_json({"variable": "count", "iia": 0.5}),
        ...                 AlignmentRecord.from_json({"variable": "phase", "iia": 1.0})]).headline_iia
        0.75
        """
        trained = [r.iia for r in self.records if r.trained]
        return sum(trained) / len(trained) if trained else None

    def to_json(self) -> dict[str, Any]:
        """``results.json``'s content in the current form (``data`` only where there is some)."""
        out = {
            "schema": SCHEMA,
            "config": self.config,
            "steps": self.steps,
            "best_step": self.best_step,
            "train_seconds": self.train_seconds,
            "learned_units": self.learned_units,
            "task_accuracy": self.task_accuracy,
            "records": [r.to_json() for r in self.records],
            "identity": self.identity,
            "seconds": self.seconds,
        }
        if self.data is not None:
            out["data"] = self.data
        return out

    @classmethod
    def read(cls, path: Path) -> RunResults:
        """The results in the file ``path``; a FileDataError (one line naming the file and the key) for a
        file that is not a run's results."""
        return cls.from_json(read_json(path), path)

    @classmethod
    def from_json(cls, data: Any, file: str | Path = "results.json") -> RunResults:
        """Results from ``results.json``'s content (any schema so far), every key and value checked; a
        FileDataError naming ``file`` and the key for anything else.

        >>> RunResults.from_json({"config": {}, "records": [{"variable": "count", "iia": "high"}]})
        Traceback (most recent call last):
        ...
        alignsearch.file_data.FileDataError: results.json: records[0].iia is 'high': expected a number
        """
        if not isinstance(data, Mapping):
            raise FileDataError(file, "the file", f"is {_a(data)}: expected a JSON object (a run's results)")
        for key in data:
            if key not in KEYS:
                raise FileDataError(
                    file, str(key), f"is not a key of results.json (known: {', '.join(KEYS)})"
                )
        _schema(data.get("schema", 1), file)
        for key in ("records", "config"):
            if key not in data:
                raise FileDataError(
                    file, key, "is missing: a finished run's results have a config and records"
                )
        records = data["records"]
        if not isinstance(records, list):
            raise FileDataError(file, "records", f"is {_a(records)}: expected a list of records")
        if not records:
            raise FileDataError(file, "records", "is empty: expected a record per direction and variable")
        parsed = [_record(r, file, f"records[{i}]") for i, r in enumerate(records)]
        identity = _optional_mapping(data, "identity", file)
        models = (identity or {}).get("models")
        if models is not None and not (
            isinstance(models, list) and all(isinstance(m, Mapping) for m in models)
        ):
            raise FileDataError(
                file, "identity.models", f"is {shorten(repr(models), 80)}: expected a list of objects"
            )
        accuracy = data.get("task_accuracy")
        if accuracy is not None and not (
            isinstance(accuracy, list) and all(a is None or _is_number(a) for a in accuracy)
        ):
            raise FileDataError(
                file, "task_accuracy", f"is {shorten(repr(accuracy), 80)}: expected a list of numbers"
            )
        config = data["config"]
        if not isinstance(config, Mapping):
            raise FileDataError(
                file, "config", f"is {_a(config)}: expected a JSON object (the run's settings)"
            )
        return cls(
            config=dict(config),
            records=parsed,
            steps=_count(data, "steps", file),
            best_step=_count(data, "best_step", file),
            train_seconds=_number(data, "train_seconds", file),
            learned_units=_numbers(data, "learned_units", file),
            task_accuracy=accuracy,
            identity=identity,
            seconds=_numbers(data, "seconds", file),
            data=_optional_mapping(data, "data", file),
        )


def _schema(value: Any, file: str | Path) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise FileDataError(
            file, "schema", f"is {shorten(repr(value), 40)}: expected a version from 1 to {SCHEMA}"
        )
    if value > SCHEMA:
        raise FileDataError(
            file,
            "schema",
            f"is {value}: this alignsearch reads results.json up to schema {SCHEMA} (written by a newer version?)",
        )


def _record(value: Any, file: str | Path, key: str) -> AlignmentRecord:
    """A record of ``results.json`` (its flat JSON form), each key and value checked."""
    if not isinstance(value, Mapping):
        raise FileDataError(file, key, f"is {_a(value)}: expected a record (a JSON object)")
    missing = [k for k in RECORD_REQUIRED if k not in value]
    if missing:
        raise FileDataError(file, key, f"lacks {', '.join(missing)}")
    for name, item in value.items():
        where = f"{key}.{name}"
        if name in RECORD_STRINGS or (name in RECORD_OPTIONAL_STRINGS and item is not None):
            if not isinstance(item, str):
                raise FileDataError(file, where, f"is {shorten(repr(item), 80)}: expected a string")
        elif name == "direction":
            if not isinstance(item, str) or not DIRECTION.fullmatch(item):
                raise FileDataError(
                    file,
                    where,
                    f"is {shorten(repr(item), 80)}: expected source>target model indices (0>1)",
                )
        elif name == "trained":
            if not isinstance(item, bool):
                raise FileDataError(file, where, f"is {shorten(repr(item), 80)}: expected true or false")
        elif name == "iia":
            if not _is_number(item):
                raise FileDataError(file, where, f"is {shorten(repr(item), 80)}: expected a number")
        elif name == "iia_by_position":
            if not isinstance(item, Mapping) or not all(_is_number(v) for v in item.values()):
                raise FileDataError(
                    file, where, f"is {shorten(repr(item), 80)}: expected an object of position: IIA"
                )
        elif name == "n_pairs_by_position":
            if not isinstance(item, Mapping) or not all(_is_pair_count(v) for v in item.values()):
                raise FileDataError(
                    file,
                    where,
                    f"is {shorten(repr(item), 80)}: expected an object of position: pairs (1 or more)",
                )
        elif name == "iia_by_position_interval":
            if not isinstance(item, Mapping) or not all(_is_bounds(v) for v in item.values()):
                raise FileDataError(
                    file,
                    where,
                    f"is {shorten(repr(item), 80)}: expected an object of position: [low, high], shares with low <= high",
                )
        elif name == "pair_hits":
            if item is not None and not (isinstance(item, str) and set(item) <= {"0", "1"}):
                raise FileDataError(
                    file,
                    where,
                    f"is {shorten(repr(item), 80)}: expected a string of 0 and 1 (a pair each) or null",
                )
        elif name in PAIR_COUNTS or name.startswith(CONTROL_INTERVAL_PREFIXES[0]):
            if item is not None and not _is_pair_count(item):
                raise FileDataError(
                    file,
                    where,
                    f"is {shorten(repr(item), 80)}: expected a number of pairs (1 or more) or null",
                )
        elif name in RECORD_BOUNDS or name.startswith(CONTROL_INTERVAL_PREFIXES[1:]):
            if item is not None and not (_is_number(item) and 0 <= item <= 1):
                raise FileDataError(
                    file, where, f"is {shorten(repr(item), 80)}: expected a share from 0 to 1 or null"
                )
        elif name in RECORD_OPTIONAL_NUMBERS or (
            name.startswith((CONTROL_PREFIX, CONTROL_DIVERGENCE_PREFIX)) and name not in RECORD_KEYS
        ):
            if item is not None and not _is_number(item):
                raise FileDataError(file, where, f"is {shorten(repr(item), 80)}: expected a number or null")
        elif name not in RECORD_OPTIONAL_STRINGS:
            known = ", ".join(
                (
                    *RECORD_KEYS,
                    *(
                        f"{p}<name>"
                        for p in (CONTROL_PREFIX, *CONTROL_INTERVAL_PREFIXES, CONTROL_DIVERGENCE_PREFIX)
                    ),
                )
            )
            raise FileDataError(file, where, f"is not a key of a record (known: {known})")
    for metric, (_, low, high) in INTERVALS.items():
        lower, upper = value.get(low), value.get(high)
        if (lower is None) != (upper is None) or (lower is not None and upper is not None and lower > upper):
            raise FileDataError(
                file,
                f"{key}.{low}",
                f"is {lower!r} and {high} {upper!r}: expected both or neither, low <= high ({metric}'s interval)",
            )
    return AlignmentRecord.from_json(dict(value))


def _optional_mapping(data: Mapping[str, Any], key: str, file: str | Path) -> dict[str, Any] | None:
    value = data.get(key)
    if value is not None and not isinstance(value, Mapping):
        raise FileDataError(file, key, f"is {_a(value)}: expected a JSON object")
    return dict(value) if value is not None else None


def _count(data: Mapping[str, Any], key: str, file: str | Path) -> int | None:
    value = data.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise FileDataError(file, key, f"is {shorten(repr(value), 40)}: expected a whole number of steps")
    return value


def _number(data: Mapping[str, Any], key: str, file: str | Path) -> float | None:
    value = data.get(key)
    if value is not None and not _is_number(value):
        raise FileDataError(file, key, f"is {shorten(repr(value), 40)}: expected a number")
    return value


def _numbers(data: Mapping[str, Any], key: str, file: str | Path) -> dict[str, float] | None:
    value = data.get(key)
    if value is not None and not (isinstance(value, Mapping) and all(_is_number(v) for v in value.values())):
        raise FileDataError(file, key, f"is {shorten(repr(value), 80)}: expected an object of numbers")
    return dict(value) if value is not None else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_pair_count(value: Any) -> bool:
    """Whether a JSON value is a number of pairs: a whole number, 1 or more (not a boolean)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_bounds(value: Any) -> bool:
    """Whether a JSON value is an interval of a share: ``[low, high]``, ``0 <= low <= high <= 1``."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(_is_number(v) and 0 <= v <= 1 for v in value)
        and value[0] <= value[1]
    )


def _a(value: Any) -> str:
    """What a JSON value is, in words: ``a list``, ``a string``, ``null``."""
    kinds = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return kinds.get(type(value), "null" if value is None else f"a {type(value).__name__}")
