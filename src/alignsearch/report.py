"""Turn a run or sweep folder into a table and plots: ``python -m alignsearch.report multirun/<...>``.

Every ``results.json`` under the folder (but those kept aside in a run's ``superseded/``, of other models
or settings) contributes one row per record (direction and variable), with
the run's settings, the trial accuracy of the record's target model on its task (as aligned: column
``target trial acc``, ``task_acc`` in ``report.csv``) and, for two-model runs, the similarity measures of
``similarity.json``. Rows that differ only in ``seed`` form one configuration; the report gives the mean,
standard deviation and count over seeds of each measure (a measure of one run: its value alone, no
standard deviation):

* ``report.md``: the settings shared by every run (a setting is shared when all runs have the same
  value, a list compared whole), then a markdown table whose columns are the settings that vary,
  ``direction`` (``source>target`` by model index), ``variable`` and the measures; for two-model runs a
  second table gives the similarity of the model pair (CKA, RSA: one row per configuration, over its
  runs, as they do not depend on the direction or variable); then the plots, and when there are any,
  three sections:

  - "Failed jobs": the jobs of each sweep whose latest row in its ``summary.csv`` says ``failed`` or
    ``interrupted`` (job folder, overrides, error or where the signal stopped it);
  - "Repeated runs": runs left out because a newer run has every setting and the seed the same (the
    same sweep run twice into two folders): each seed of a configuration counts once;
  - "Unreadable runs": every file that could not be read (a ``results.json``, which leaves its run out;
    a ``similarity.json`` or ``metrics.csv``, which leaves out what it adds; a ``summary.csv``), by path
    with the reason; each is also printed on stderr, one line per file;

* ``report.csv``: the numbers of the first table, unrounded, with the pair's similarity measures on each of
  its rows;
* ``plots/*.png``: the validation IIA learning curves of every run with a ``metrics.csv`` (one line per run
  and trained direction/variable), and for what the folder holds: IIA against ``n_units`` per variable,
  IIA by layer, the MAS direction matrix as a heatmap, and IIA with task accuracy over training snapshots
  (with their correlation, also written into ``report.md``).

The report is printed on stdout. Exit status: 0 with a report; 2 (bad input) when the folder does not
exist, holds no ``results.json`` or none that can be read, or when the report cannot be written (``--out``
puts it elsewhere); 1 when the folder's sweeps ran but every job failed (as the sweep's own exit status),
with nothing written.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from alignsearch import atomic
from alignsearch.cli import sweep
from alignsearch.controls import CONTROLS
from alignsearch.file_data import FileDataError
from alignsearch.search.records import (
    CONTROL_DIVERGENCE_PREFIX,
    CONTROL_PREFIX,
    DEFAULT_DIRECTION,
    DIVERGENCE_KEYS,
    SPLIT_METRICS,
)
from alignsearch.search.results import RunResults
from alignsearch.search.run_folder import METRICS, RESULTS, SIMILARITY, SUPERSEDED
from alignsearch.tables import MISSING, cell, markdown_table, number

PLOTS = "plots"
BASE_METRICS = SPLIT_METRICS
SELECTIVITY = "selectivity"
"""IIA (validation) minus the best control of the record."""


def control_names(rows: Sequence[dict[str, Any]] = ()) -> list[str]:
    """The controls a report has columns for: every registered one (:data:`alignsearch.controls.CONTROLS`,
    in the order registered), then those ``rows`` hold that are not registered here (a control of the
    run's own, registered where it ran), by name."""
    held = {k.removeprefix(CONTROL_PREFIX) for row in rows for k in row if k.startswith(CONTROL_PREFIX)}
    return [*CONTROLS, *sorted(held - set(CONTROLS))]


def controls_note() -> str:
    """What the report says of the controls, from the registry: each control's note, which are the
    informative ones, and what selectivity is."""
    described = "; ".join(f"{name} = {control.note}" for name, control in CONTROLS.items())
    informative = [name for name, control in CONTROLS.items() if control.informative]
    which = ""
    if informative:
        are = "are the informative ones" if len(informative) > 1 else "is the informative one"
        which = f" {' and '.join(informative)} {are};"
    return f"Controls (alignment.controls): {described}.{which} selectivity = IIA val minus the best control."


CONTROL_DIVERGENCE_NOTE = (
    "control divergence = the divergence of the control's interventions at the site (validation pairs, the"
    " measure of the divergence column; random_subspace: the mean over its draws), to compare with the"
    " alignment's divergence and its floor."
)
"""Said after :func:`controls_note` where the records hold the controls' divergence (schema 4 on)."""
TASK_ACC = "task_acc"
"""The trial accuracy of a record's target model on its task (``results.json``'s ``task_accuracy``)."""
PAIR_METRICS = ("cka_linear", "cka_rbf", "cka_dist_cos", "rsa_cos_spearman")
"""The similarity of a run's two models (``similarity.json``): one value per run, whatever the direction."""


def extra_metrics(rows: Sequence[dict[str, Any]] = ()) -> tuple[str, ...]:
    """The measures beside :data:`BASE_METRICS`: each control's validation IIA (``iia_control_<name>``, for
    the controls of :func:`control_names`), the selectivity, the divergence, each control's divergence at
    the site (records of schema 4 on), the target's task accuracy and the models' similarity."""
    names = control_names(rows)
    return (
        *(f"{CONTROL_PREFIX}{name}" for name in names),
        SELECTIVITY,
        *DIVERGENCE_KEYS,
        *(f"{CONTROL_DIVERGENCE_PREFIX}{name}" for name in names),
        TASK_ACC,
        *PAIR_METRICS,
    )


TITLES = {
    "iia": "IIA val",
    "iia_heldout": "IIA heldout",
    "iia_test": "IIA test",
    TASK_ACC: "target trial acc",
}
"""How ``report.md`` heads a measure's column (the others: by its name)."""
ROW_KEYS = ("direction", "variable")
CURVE_SPLIT = "val"
"""The evaluation split whose IIA the learning curves show."""
CURVE_COLUMNS = ("step", "split", "iia")
"""The ``metrics.csv`` columns the learning curves need."""
TRUE_WORDS = ("true", "1")
"""How ``metrics.csv`` spells a trained track (Python's ``True``, written by the csv module)."""
EXIT_ALL_JOBS_FAILED, EXIT_USAGE = 1, 2

T = TypeVar("T")


class Unreadable(ValueError):
    """A file the report cannot use; the message says why."""


class NothingToReport(Exception):
    """No run under the folder could be read; ``status`` is the exit status it gives."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class CannotWrite(Exception):
    """The report could not be written where asked; the message names the place and the reason."""


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
    return f"cannot read ({_system_reason(error)})"


def _system_reason(error: Exception) -> str:
    """The operating system's reason for an error, in lower case ("permission denied")."""
    return (getattr(error, "strerror", None) or str(error)).lower()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def failed_jobs(folder: Path, problems: list[Problem]) -> list[FailedJob]:
    """Jobs whose latest row in a ``summary.csv`` under ``folder`` says they failed or were interrupted
    (unreadable: a problem)."""
    failed = []
    for path in sorted(folder.rglob(sweep.SUMMARY)):
        try:
            latest = sweep.latest_rows(path.parent)
            failed += [
                FailedJob(path.parent / job, row.get("overrides") or "", row.get("error") or "")
                for job, row in latest.items()
                if row["status"] in sweep.UNFINISHED
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


def varying_keys(rows: Sequence[dict[str, Any]], candidates: Iterable[str]) -> list[str]:
    """The config keys whose values differ between rows (in ``candidates`` order)."""
    return [k for k in candidates if len({r.get(k) for r in rows}) > 1]


def shared_settings(rows: Sequence[dict[str, Any]], config_keys: Iterable[str]) -> dict[str, Any]:
    """The settings that have one value in every row (a run without one counts as a different value)."""
    return {k: rows[0].get(k) for k in config_keys if len({r.get(k) for r in rows}) == 1}


def table_keys(rows: Sequence[dict[str, Any]], config_keys: Iterable[str]) -> list[str]:
    """The settings that vary, less those another column implies.

    ``variables`` when each run aligns one variable (the ``variable`` column says it), ``site`` when the
    layer varies (the site follows from the layer).
    """
    varying = varying_keys(rows, config_keys)
    if all(str(r.get("variables")) == str(r.get("variable")) for r in rows):
        varying = [k for k in varying if k != "variables"]
    if "layer" in varying and "site" in varying:
        varying = [k for k in varying if k != "site"]
    return varying


def metrics_present(rows: Sequence[dict[str, Any]]) -> list[str]:
    return list(BASE_METRICS) + [m for m in extra_metrics(rows) if any(r.get(m) is not None for r in rows)]


def summarize(
    rows: Sequence[dict[str, Any]],
    config_keys: Sequence[str],
    metrics: Sequence[str] = BASE_METRICS,
    row_keys: Sequence[str] = ROW_KEYS,
) -> list[dict[str, Any]]:
    """Mean, standard deviation and count over seeds per (configuration, ``row_keys``: direction and
    variable). The standard deviation of a single value is None: one run shows no spread."""
    keys = [k for k in config_keys if k != "seed"] + list(row_keys)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in keys), []).append(row)
    summary = []
    for key, members in groups.items():
        out = dict(zip(keys, key, strict=True))
        out["n"] = len(members)
        for metric in metrics:
            values = [m[metric] for m in members if m.get(metric) is not None]
            out[f"{metric}_mean"] = statistics.fmean(values) if values else None
            out[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else None
        summary.append(out)
    summary.sort(key=lambda row: tuple(natural_order(row[k]) for k in keys))
    return summary


def natural_order(value: Any) -> tuple[int, float, str]:
    """Numbers in numeric order, before words (``embedding``, ``count``)."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def to_csv(summary: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    if summary:
        writer = csv.DictWriter(buffer, list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    return buffer.getvalue()


def _cell(mean: float | None, std: float | None) -> str:
    """``0.950 ± 0.050``; the value alone without a standard deviation (one run); ``-`` without a value."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return MISSING
    return number(mean) if std is None else f"{number(mean)} ± {number(std)}"


def _title(metric: str) -> str:
    """``iia`` -> ``IIA val``, ``iia_control_shuffled`` -> ``control: shuffled``,
    ``divergence_control_shuffled`` -> ``control divergence: shuffled``, ``task_acc`` -> ``target trial
    acc``."""
    if metric.startswith(CONTROL_PREFIX):
        return f"control: {metric.removeprefix(CONTROL_PREFIX)}"
    if metric.startswith(CONTROL_DIVERGENCE_PREFIX):
        return f"control divergence: {metric.removeprefix(CONTROL_DIVERGENCE_PREFIX)}"
    return TITLES.get(metric, metric)


def to_markdown(
    summary: Sequence[dict[str, Any]], shared: dict[str, Any], metrics: Sequence[str] = BASE_METRICS
) -> str:
    """The summary as a markdown table, after one line of the settings every run shares."""
    lines = []
    if shared:
        lines += ["Shared: " + ", ".join(f"{k}={v}" for k, v in shared.items()), ""]
    if not summary:
        return "\n".join([*lines, "No complete runs."]) + "\n"
    return "\n".join([*lines, summary_table(summary, metrics)]) + "\n"


def summary_table(summary: Sequence[dict[str, Any]], metrics: Sequence[str]) -> str:
    """A summary's rows as a markdown table: its keys, ``n`` and each metric's mean ± std."""
    keys = [k for k in summary[0] if k != "n" and not k.endswith(("_mean", "_std"))]
    header = [*keys, "n", *(_title(m) for m in metrics)]
    rows = [
        [
            *(str(row[k]) for k in keys),
            str(row["n"]),
            *(_cell(row[f"{m}_mean"], row[f"{m}_std"]) for m in metrics),
        ]
        for row in summary
    ]
    return markdown_table(header, rows, pad=False)


def pair_section(rows: Sequence[dict[str, Any]], varying: Sequence[str]) -> str:
    """The similarity of each configuration's two models (CKA, RSA of ``similarity.json``), once per model
    pair rather than on each direction's row: mean ± std over the configuration's runs (seeds). Empty
    without two-model runs."""
    metrics = [m for m in PAIR_METRICS if any(r.get(m) is not None for r in rows)]
    if not metrics:
        return ""
    runs = list({r["run"]: r for r in rows if any(r.get(m) is not None for m in metrics)}.values())
    pairs = summarize(runs, varying, metrics, row_keys=())
    return (
        "Similarity of the two models (similarity.json: one value per run, whatever the direction), over"
        " each model pair's runs:\n\n" + summary_table(pairs, metrics) + "\n"
    )


def failed_section(failed: Sequence[FailedJob]) -> str:
    """The "Failed jobs" section of ``report.md`` (empty without failed jobs)."""
    if not failed:
        return ""
    lines = [
        "## Failed jobs",
        "",
        f"{len(failed)} failed job(s) (each job's latest row in its sweep's summary.csv), not in the table:",
        "",
        "| job folder | overrides | error |",
        "|---|---|---|",
    ]
    lines += [f"| `{job.folder}` | {cell(job.overrides)} | {cell(job.error)} |" for job in failed]
    return "\n".join(lines) + "\n"


def repeated_section(repeated: Sequence[tuple[str, str]]) -> str:
    """The "Repeated runs" section of ``report.md`` (empty without repeats)."""
    if not repeated:
        return ""
    lines = [
        "## Repeated runs",
        "",
        f"{len(repeated)} run(s) have every setting and the seed of a newer run; only the newer counts:",
        "",
        "| left out | newer run |",
        "|---|---|",
    ]
    lines += [f"| `{old}` | `{new}` |" for old, new in sorted(repeated)]
    return "\n".join(lines) + "\n"


def unreadable_section(unreadable: Sequence[Problem]) -> str:
    """The "Unreadable runs" section of ``report.md`` (empty when every file could be read)."""
    if not unreadable:
        return ""
    lines = [
        "## Unreadable runs",
        "",
        f"{len(unreadable)} file(s) could not be read; what they hold is left out:",
        "",
    ]
    lines += [f"- `{p.path}`: {p.reason}" for p in unreadable]
    return "\n".join(lines) + "\n"


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson correlation, or None with fewer than three points or no spread."""
    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    return statistics.correlation(xs, ys)


def training_correlation(rows: Sequence[dict[str, Any]]) -> tuple[float | None, int]:
    """Pearson r between IIA and task accuracy over the trained records of snapshot runs."""
    points = [
        (r["iia"], r[TASK_ACC])
        for r in rows
        if r.get("snapshot") is not None and r.get(TASK_ACC) is not None and r.get("trained", True)
    ]
    return pearson([p[0] for p in points], [p[1] for p in points]), len(points)


def nothing_to_report(folder: Path, collected: Collected) -> NothingToReport:
    """Why there is no report: no ``results.json`` at all or none readable (bad input), or only failed
    jobs (the sweep's own failure)."""
    if not collected.n_results and not collected.failed:
        return NothingToReport(f"no {RESULTS} under {folder}", EXIT_USAGE)
    counts = [f"{len(collected.unreadable)} unreadable"] if collected.unreadable else []
    counts += [f"{len(collected.failed)} failed job(s)"] if collected.failed else []
    status = EXIT_USAGE if collected.n_results else EXIT_ALL_JOBS_FAILED
    return NothingToReport(f"no readable {RESULTS} under {folder} ({', '.join(counts)})", status)


def report(
    folder: Path, out_dir: Path | None = None, collected: Collected | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Write ``report.md``, ``report.csv`` and ``plots/`` for ``folder`` into ``out_dir`` (default: it).

    ``collected`` is what :func:`collect` read from ``folder`` (read here when not given). Raises
    :class:`NothingToReport` when no run could be read, :class:`CannotWrite` when ``out_dir`` refuses.
    """
    collected = collected if collected is not None else collect(folder)
    rows = collected.rows
    if not rows:
        raise nothing_to_report(folder, collected)
    varying = table_keys(rows, collected.config_keys)
    shared = shared_settings(rows, collected.config_keys)
    metrics = metrics_present(rows)
    summary = summarize(rows, varying, metrics)  # report.csv: every measure on every row
    markdown = to_markdown(summary, shared, [m for m in metrics if m not in PAIR_METRICS])
    pairs = pair_section(rows, varying)
    markdown += f"\n{pairs}" if pairs else ""
    if SELECTIVITY in metrics:
        diverging = any(m.startswith(CONTROL_DIVERGENCE_PREFIX) for m in metrics)
        markdown += f"\n{controls_note()}{' ' + CONTROL_DIVERGENCE_NOTE if diverging else ''}\n"
    r, n = training_correlation(rows)
    if n:
        shown = "-" if r is None else f"{r:.3f}"
        markdown += (
            f"\nIIA against task accuracy over training snapshots: Pearson r = {shown} ({n} records)\n"
        )
    if not collected.curves:
        markdown += f"\nNo IIA learning curves: no run has a readable {METRICS}.\n"
    out_dir = out_dir or folder
    from alignsearch.report_plots import write_plots  # matplotlib only when there is something to draw

    try:
        plots = write_plots(rows, varying, out_dir / PLOTS, collected.curves)
        if plots:
            markdown += "\n" + "\n".join(f"![{p.stem}]({PLOTS}/{p.name})" for p in plots) + "\n"
        sections = (
            failed_section(collected.failed),
            repeated_section(collected.repeated),
            unreadable_section(collected.unreadable),
        )
        for section in sections:
            markdown += "\n" + section if section else ""
        atomic.write_text(out_dir / "report.md", markdown)
        atomic.write_text(out_dir / "report.csv", to_csv(summary))
    except OSError as e:
        raise CannotWrite(f"cannot write the report to {out_dir}: {write_failure(out_dir, e)}") from e
    return markdown, summary


def write_failure(out_dir: Path, error: OSError) -> str:
    """Why writing into ``out_dir`` failed, in words: a file in the way by name, else the system's reason."""
    place = Path(error.filename) if isinstance(error.filename, str) else out_dir
    for parent in (place, *place.parents):
        try:
            if parent.exists():
                if not parent.is_dir():
                    return f"{parent} is a file, not a folder"
                break
        except OSError:
            break
    return _system_reason(error)  # "permission denied", "read-only file system"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m alignsearch.report", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a run or sweep folder (searched recursively)")
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the report (default: the folder)"
    )
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"error: folder={args.folder} is not allowed: expected an existing folder", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    collected = collect(args.folder)
    for problem in collected.unreadable:
        print(problem, file=sys.stderr)
    try:
        markdown, _ = report(args.folder, args.out, collected)
    except NothingToReport as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.status)
    except CannotWrite as e:
        hint = "" if args.out else " (choose another folder with --out)"
        print(f"error: {e}{hint}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    print(markdown, end="")


if __name__ == "__main__":
    main()
