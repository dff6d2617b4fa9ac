"""Turn a run or sweep folder into a table and plots: ``python -m alignsearch.report multirun/<...>``.

Every ``results.json`` under the folder contributes one row per record (direction and variable), with
the run's settings, the task accuracy of the record's target model (as aligned) and, for two-model runs,
the similarity measures of ``similarity.json``. Rows that differ only in ``seed`` form one
configuration; the report gives the mean, standard deviation and count over seeds of each measure:

* ``report.md``: the settings shared by every run, then a markdown table whose columns are the settings
  that vary, ``direction`` (``source>target`` by model index), ``variable`` and the measures;
* ``report.csv``: the same numbers, unrounded;
* ``plots/*.png``, for what the folder holds: IIA against ``n_units`` per variable, IIA by layer, the
  MAS direction matrix as a heatmap, and IIA with task accuracy over training snapshots (with their
  correlation, also written into ``report.md``).
"""

from __future__ import annotations

import argparse
import csv
import io as text_io
import json
import math
import statistics
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from alignsearch import io

RESULTS = "results.json"
SIMILARITY = "similarity.json"
BASE_METRICS = ("iia", "iia_heldout", "iia_test")
EXTRA_METRICS = ("task_acc", "cka_linear", "cka_rbf", "cka_dist_cos", "rsa_cos_spearman")
ROW_KEYS = ("direction", "variable")


def collect(folder: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """One flat row per record of every complete run under ``folder``, and the config keys seen."""
    rows: list[dict[str, Any]] = []
    config_keys: list[str] = []
    for path in sorted(folder.rglob(RESULTS)):
        results = json.loads(path.read_text())
        config = {k: _hashable(v) for k, v in results["config"].items()}
        config_keys += [k for k in config if k not in config_keys]
        similarity = {}
        if (path.parent / SIMILARITY).is_file():
            similarity = json.loads((path.parent / SIMILARITY).read_text())["measures"]
        accuracy = results.get("task_accuracy") or []
        for record in results["records"]:
            direction = record.get("direction", "0>0")
            target = int(direction.split(">")[1])
            row = {**config, **record, "direction": direction, "run": str(path.parent.relative_to(folder))}
            row["task_acc"] = accuracy[target] if target < len(accuracy) else None
            row |= {k: similarity.get(k) for k in EXTRA_METRICS if k in similarity}
            rows.append(row)
    return rows, config_keys


def _hashable(value: Any) -> Any:
    return ",".join(map(str, value)) if isinstance(value, list) else value


def varying_keys(rows: Sequence[dict[str, Any]], candidates: Iterable[str]) -> list[str]:
    """The config keys whose values differ between rows (in ``candidates`` order)."""
    return [k for k in candidates if len({r.get(k) for r in rows}) > 1]


def metrics_present(rows: Sequence[dict[str, Any]]) -> list[str]:
    return list(BASE_METRICS) + [m for m in EXTRA_METRICS if any(r.get(m) is not None for r in rows)]


def summarize(
    rows: Sequence[dict[str, Any]], config_keys: Sequence[str], metrics: Sequence[str] = BASE_METRICS
) -> list[dict[str, Any]]:
    """Mean, standard deviation and count over seeds per (configuration, direction, variable)."""
    keys = [k for k in config_keys if k != "seed"] + list(ROW_KEYS)
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
            out[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)
        summary.append(out)
    summary.sort(key=lambda row: tuple(_natural(row[k]) for k in keys))
    return summary


def _natural(value: Any) -> tuple[int, float, str]:
    """Numbers in numeric order, before words (``embedding``, ``count``)."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def to_csv(summary: Sequence[dict[str, Any]]) -> str:
    buffer = text_io.StringIO()
    if summary:
        writer = csv.DictWriter(buffer, list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    return buffer.getvalue()


def _cell(mean: float | None, std: float | None) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    return f"{mean:.3f} ± {std:.3f}"


def _title(metric: str) -> str:
    return {"iia": "IIA val", "iia_heldout": "IIA heldout", "iia_test": "IIA test"}.get(metric, metric)


def to_markdown(
    summary: Sequence[dict[str, Any]], shared: dict[str, Any], metrics: Sequence[str] = BASE_METRICS
) -> str:
    """The summary as a markdown table, after one line of the settings every run shares."""
    lines = []
    if shared:
        lines += ["Shared: " + ", ".join(f"{k}={v}" for k, v in shared.items()), ""]
    if not summary:
        return "\n".join([*lines, "No complete runs."]) + "\n"
    keys = [k for k in summary[0] if k != "n" and not k.endswith(("_mean", "_std"))]
    header = [*keys, "n", *(_title(m) for m in metrics)]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in summary:
        cells = [str(row[k]) for k in keys] + [str(row["n"])]
        cells += [_cell(row[f"{m}_mean"], row[f"{m}_std"]) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson correlation, or None with fewer than three points or no spread."""
    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    return statistics.correlation(xs, ys)


def training_correlation(rows: Sequence[dict[str, Any]]) -> tuple[float | None, int]:
    """Pearson r between IIA and task accuracy over the trained records of snapshot runs."""
    points = [
        (r["iia"], r["task_acc"])
        for r in rows
        if r.get("snapshot") is not None and r.get("task_acc") is not None and r.get("trained", True)
    ]
    return pearson([p[0] for p in points], [p[1] for p in points]), len(points)


def report(folder: Path, out_dir: Path | None = None) -> tuple[str, list[dict[str, Any]]]:
    """Write ``report.md``, ``report.csv`` and ``plots/`` for ``folder`` into ``out_dir`` (default: it)."""
    rows, config_keys = collect(folder)
    if not rows:
        raise FileNotFoundError(f"no {RESULTS} under {folder}")
    varying = varying_keys(rows, config_keys)
    if all("," not in str(r.get("variables", "")) for r in rows):  # one variable per run: `variable` says it
        varying = [k for k in varying if k != "variables"]
    if "layer" in varying and "site" in varying:  # the site follows from the layer
        varying = [k for k in varying if k != "site"]
    shared = {k: rows[0].get(k) for k in config_keys if k not in varying and k != "seed"}
    metrics = metrics_present(rows)
    summary = summarize(rows, varying, metrics)
    markdown = to_markdown(summary, shared, metrics)
    r, n = training_correlation(rows)
    if n:
        shown = "-" if r is None else f"{r:.3f}"
        markdown += (
            f"\nIIA against task accuracy over training snapshots: Pearson r = {shown} ({n} records)\n"
        )
    out_dir = out_dir or folder
    from alignsearch.report_plots import write_plots  # matplotlib only when there is something to draw

    plots = write_plots(rows, varying, out_dir / "plots")
    if plots:
        markdown += "\n" + "\n".join(f"![{p.stem}](plots/{p.name})" for p in plots) + "\n"
    io.write_text(out_dir / "report.md", markdown)
    io.write_text(out_dir / "report.csv", to_csv(summary))
    return markdown, summary


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m alignsearch.report", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a run or sweep folder (searched recursively)")
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the report (default: the folder)"
    )
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"error: folder={args.folder} is not allowed: expected an existing folder", file=sys.stderr)
        sys.exit(2)
    try:
        markdown, _ = report(args.folder, args.out)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(markdown, end="")


if __name__ == "__main__":
    main()
