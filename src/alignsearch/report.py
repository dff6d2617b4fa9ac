"""Turn a run or sweep folder into a table: ``python -m alignsearch.report multirun/run_alignment/<date>/<time>``.

Every ``results.json`` under the folder contributes one row per record (source, target, variable).
Rows that differ only in ``seed`` form one configuration; the report gives the mean, standard deviation
and count over seeds of each IIA, as ``report.md`` (a markdown table) and ``report.csv`` in the folder.
Columns are the settings that vary across the runs (settings shared by all runs are listed once above
the table), then ``direction`` (``source>target`` by model index) and ``variable``.
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
METRICS = ("iia", "iia_heldout", "iia_test")
ROW_KEYS = ("direction", "variable")


def collect(folder: Path) -> list[dict[str, Any]]:
    """One flat row per record of every complete run under ``folder``: its config, then the record."""
    rows = []
    for path in sorted(folder.rglob(RESULTS)):
        results = json.loads(path.read_text())
        config = {k: _hashable(v) for k, v in results["config"].items()}
        for record in results["records"]:
            rows.append({**config, **record, "run": str(path.parent.relative_to(folder))})
    return rows


def _hashable(value: Any) -> Any:
    return ",".join(map(str, value)) if isinstance(value, list) else value


def varying_keys(rows: Sequence[dict[str, Any]], candidates: Iterable[str]) -> list[str]:
    """The config keys whose values differ between rows (in ``candidates`` order)."""
    return [k for k in candidates if len({r.get(k) for r in rows}) > 1]


def summarize(rows: Sequence[dict[str, Any]], config_keys: Sequence[str]) -> list[dict[str, Any]]:
    """Mean, standard deviation and count over seeds per (configuration, direction, variable)."""
    keys = [k for k in config_keys if k != "seed"] + list(ROW_KEYS)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in keys), []).append(row)
    summary = []
    for key, members in groups.items():
        out = dict(zip(keys, key, strict=True))
        out["n"] = len(members)
        for metric in METRICS:
            values = [m[metric] for m in members if m.get(metric) is not None]
            out[f"{metric}_mean"] = statistics.fmean(values) if values else None
            out[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)
        summary.append(out)
    return summary


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


def to_markdown(summary: Sequence[dict[str, Any]], shared: dict[str, Any]) -> str:
    """The summary as a markdown table, after one line of the settings every run shares."""
    lines = []
    if shared:
        lines += ["Shared: " + ", ".join(f"{k}={v}" for k, v in shared.items()), ""]
    if not summary:
        return "\n".join([*lines, "No complete runs."]) + "\n"
    keys = [k for k in summary[0] if k != "n" and not k.endswith(("_mean", "_std"))]
    header = [
        *keys,
        "n",
        *("IIA " + m.removeprefix("iia").strip("_") if m != "iia" else "IIA val" for m in METRICS),
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in summary:
        cells = [str(row[k]) for k in keys] + [str(row["n"])]
        cells += [_cell(row[f"{m}_mean"], row[f"{m}_std"]) for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report(folder: Path, out_dir: Path | None = None) -> tuple[str, list[dict[str, Any]]]:
    """Write ``report.md`` and ``report.csv`` for ``folder`` into ``out_dir`` (default: the folder)."""
    rows = collect(folder)
    if not rows:
        raise FileNotFoundError(f"no {RESULTS} under {folder}")
    record_keys = {"source", "target", "trained", "token_iia", "iia_step0", "run", *METRICS, *ROW_KEYS}
    config_keys = [k for k in rows[0] if k not in record_keys]
    for row in rows[1:]:
        config_keys += [k for k in row if k not in record_keys and k not in config_keys]
    varying = varying_keys(rows, config_keys)
    shared = {k: rows[0].get(k) for k in config_keys if k not in varying and k != "seed"}
    summary = summarize(rows, varying)
    markdown = to_markdown(summary, shared)
    out_dir = out_dir or folder
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
