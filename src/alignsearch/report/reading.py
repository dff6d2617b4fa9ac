"""What the report reads under a folder: every run's ``results.json`` (one row per record, with the
run's settings, the target's task accuracy and the pair's ``similarity.json``), the learning curves of
its ``metrics.csv``, the failed jobs of every sweep's ``summary.csv``, and every file it could not read
(with the reason)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from alignsearch.file_data import FileDataError
from alignsearch.report.measures import SELECTIVITY, TASK_ACC, extra_metrics
from alignsearch.search import sweep_records
from alignsearch.search.records import DEFAULT_DIRECTION
from alignsearch.search.results import RunResults
from alignsearch.search.run_folder import METRICS, RESULTS, SIMILARITY, SUPERSEDED

CURVE_SPLIT = "val"
"""The evaluation split whose IIA the learning curves show."""
CURVE_COLUMNS = ("step", "split", "iia")
"""The ``metrics.csv`` columns the learning curves need."""
TRUE_WORDS = ("true", "1")
"""How ``metrics.csv`` spells a trained track (Python's ``True``, written by the csv module)."""
T = TypeVar("T")


class Unreadable(ValueError):
    """A file the report cannot use; the message says why."""


@dataclass(frozen=True)
class Problem:
    """A file that could not be read, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class FailedJob:
    """A sweep job whose latest row in ``summary.csv`` says it failed or was interrupted."""

    folder: Path
    overrides: str
    error: str


@dataclass
class Collected:
    """Everything the report reads under a folder."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    """One per record of every readable run: its settings, the record and the run's extra measures."""
    config_keys: list[str] = field(default_factory=list)
    """The settings seen, in the order first seen."""
    curves: list[dict[str, Any]] = field(default_factory=list)
    """One per validation evaluation of a trained track (``metrics.csv``), with the run's settings."""
    unreadable: list[Problem] = field(default_factory=list)
    failed: list[FailedJob] = field(default_factory=list)
    repeated: list[tuple[str, str]] = field(default_factory=list)
    """``(run, newer run)``: runs left out because a newer run has every setting and the seed the same."""
    n_results: int = 0
    """How many ``results.json`` files were found, readable or not."""


def collect(folder: Path) -> Collected:
    """The rows, learning curves, unreadable files and failed jobs of every run and sweep under ``folder``.

    A run whose settings and seed are all those of a newer run (the same sweep run twice into two folders,
    say) is left out and listed (``repeated``): each seed of a configuration counts once."""
    out = Collected()
    same_settings: dict[tuple, list[tuple[float, Path, RunResults]]] = {}
    for path in sorted(folder.rglob(RESULTS)):
        if SUPERSEDED in path.relative_to(folder).parts[:-1]:  # another run's, kept aside: never this one's
            continue
        out.n_results += 1
        try:
            results = read_results(path)
        except Unreadable as e:
            out.unreadable.append(Problem(path, str(e)))
            continue
        key = tuple(sorted((k, _hashable(v)) for k, v in results.config.items()))
        same_settings.setdefault(key, []).append((path.stat().st_mtime, path, results))
    kept = []
    for runs in same_settings.values():
        runs.sort(key=lambda run: (run[0], str(run[1])))
        *older, newest = runs
        kept.append(newest)
        out.repeated += [(_run_name(folder, path), _run_name(folder, newest[1])) for _, path, _ in older]
    for _, path, results in sorted(kept, key=lambda run: run[1]):
        run = str(path.parent.relative_to(folder))
        config = {k: _hashable(v) for k, v in results.config.items()}
        out.config_keys += [k for k in config if k not in out.config_keys]
        similarity: dict[str, Any] = _optional(path.parent / SIMILARITY, read_similarity, {}, out.unreadable)
        accuracy = results.task_accuracy or []
        for record in results.records:
            target = int(record.direction.split(">")[1])
            row = {**config, **record.to_json(), "run": run}
            row[TASK_ACC] = accuracy[target] if target < len(accuracy) else None
            row[SELECTIVITY] = record.selectivity
            row |= {k: similarity.get(k) for k in extra_metrics() if k in similarity}
            out.rows.append(row)
        points: list[dict[str, Any]] = _optional(path.parent / METRICS, read_curves, [], out.unreadable)
        out.curves += [{**config, "run": run, **point} for point in points]
    out.failed = failed_jobs(folder, out.unreadable)
    return out


def _run_name(folder: Path, results: Path) -> str:
    return str(results.parent.relative_to(folder))


def _optional(path: Path, read: Callable[[Path], T], absent: T, problems: list[Problem]) -> T:
    """``read(path)``; ``absent`` when there is no such file, or when it is unreadable (noted in ``problems``)."""
    if not path.is_file():
        return absent
    try:
        return read(path)
    except Unreadable as e:
        problems.append(Problem(path, str(e)))
        return absent


def read_json(path: Path) -> Any:
    """A JSON file's contents; :class:`Unreadable` says why not."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise Unreadable(_read_failure(e)) from None
    if not text.strip():
        raise Unreadable("empty file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise Unreadable(f"not valid JSON ({e})") from None


def read_results(path: Path) -> RunResults:
    """A run's ``results.json`` (:class:`RunResults`, every key checked); :class:`Unreadable` says what is
    wrong: ``records[0].iia is 'high': expected a number``."""
    try:
        return RunResults.from_json(read_json(path), path)
    except FileDataError as e:
        raise Unreadable(f"{e.key} {e.why}") from None


def read_similarity(path: Path) -> dict[str, Any]:
    """The measures of a ``similarity.json``; :class:`Unreadable` says what is wrong."""
    data = read_json(path)
    measures = data.get("measures") if isinstance(data, dict) else None
    if not isinstance(measures, dict):
        raise Unreadable("no measures")
    bad = [k for k in extra_metrics() if measures.get(k) is not None and not _is_number(measures[k])]
    if bad:
        raise Unreadable(f"{', '.join(bad)} not a number")
    return measures


def read_curves(path: Path) -> list[dict[str, Any]]:
    """The validation IIA of each trained track at each evaluation step of a run's ``metrics.csv``.

    One dict per point: ``direction``, ``variable``, ``step`` and ``iia``. Rows without an IIA are
    skipped; :class:`Unreadable` says what is wrong with the file.
    """
    points = []
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None:
                raise Unreadable("empty file")
            missing = [c for c in CURVE_COLUMNS if c not in reader.fieldnames]
            if missing:
                raise Unreadable(f"lacks column(s) {', '.join(missing)}")
            for row in reader:
                if row["split"] != CURVE_SPLIT or not row["iia"] or not _trained(row.get("trained")):
                    continue
                points.append(
                    {
                        "direction": row.get("direction") or DEFAULT_DIRECTION,
                        "variable": row.get("variable") or "",
                        "step": _csv_number(row, "step", int, reader.line_num),
                        "iia": _csv_number(row, "iia", float, reader.line_num),
                    }
                )
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise Unreadable(_read_failure(e)) from None
    return points


def _trained(value: str | None) -> bool:
    """Whether a ``metrics.csv`` row is of a trained track (a file without the column: every track is)."""
    return value is None or value.strip().lower() in TRUE_WORDS


def _csv_number(row: dict[str, str], key: str, kind: Callable[[str], T], line: int) -> T:
    try:
        return kind(row[key])
    except (TypeError, ValueError):
        raise Unreadable(f"line {line}: {key} {row[key]!r} is not a number") from None


def _read_failure(error: Exception) -> str:
    """Why a file could not be read or parsed as text or CSV, in words."""
    if isinstance(error, UnicodeDecodeError):
        return "not text (not UTF-8)"
    if isinstance(error, csv.Error):
        return f"not valid CSV ({error})"
    return f"cannot read ({system_reason(error)})"


def system_reason(error: Exception) -> str:
    """The operating system's reason for an error, in lower case ("permission denied")."""
    return (getattr(error, "strerror", None) or str(error)).lower()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def failed_jobs(folder: Path, problems: list[Problem]) -> list[FailedJob]:
    """Jobs whose latest row in a ``summary.csv`` under ``folder`` says they failed or were interrupted
    (unreadable: a problem)."""
    failed = []
    for path in sorted(folder.rglob(sweep_records.SUMMARY)):
        try:
            latest = sweep_records.latest_rows(path.parent)
            failed += [
                FailedJob(path.parent / job, row.get("overrides") or "", row.get("error") or "")
                for job, row in latest.items()
                if row["status"] in sweep_records.UNFINISHED
            ]
        except KeyError as e:
            problems.append(Problem(path, f"not a sweep summary (no {e.args[0]} column)"))
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            problems.append(Problem(path, _read_failure(e)))
    return failed


def _hashable(value: Any) -> Any:
    """A setting as one comparable value: a list as its items joined by commas, an object as JSON."""
    if isinstance(value, list):
        return ",".join(map(str, value)) if value else "[]"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value
