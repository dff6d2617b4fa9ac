"""Every PNG plot the project draws (matplotlib, off-screen): the report's, each drawn only when the rows
can show it (:func:`write_plots`), and the scan's heatmap of sites x positions (:func:`scan_heatmap`)."""

from __future__ import annotations

import io
import statistics
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

from alignsearch import atomic
from alignsearch.report.aggregate import interval, natural_order
from alignsearch.report.measures import TASK_ACC, TITLES

if TYPE_CHECKING:
    from alignsearch.search.scan_results import ScanResult

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the off-screen backend

Row = dict[str, Any]
MAX_LEGEND_ENTRIES = 24
"""More lines than this in one plot go without a legend (it would cover the plot)."""
CURVE_TRACK = ("direction", "variable")
"""What tells the learning curves of one run apart."""


def mean_interval(points: Sequence[Row], y_key: str) -> tuple[float, float, float]:
    """``(mean, low, high)`` of ``y_key`` over the rows of one point of a plot (one per seed): the 95%
    interval of :func:`alignsearch.report.aggregate.interval` (Student's t over seeds; one run's interval
    over its pairs where known), or the value itself at both ends where there is none (a bar of no
    length).

    >>> mean_interval([{"iia": 0.95}, {"iia": 0.97}, {"iia": 0.96}, {"iia": 0.98}, {"iia": 0.94}], "iia")
    (0.96, 0.940368, 0.979632)
    >>> mean_interval([{"iia": 0.9, "iia_low": 0.786398, "iia_high": 0.956524}], "iia")
    (0.9, 0.786398, 0.956524)
    """
    mean = statistics.fmean(p[y_key] for p in points)
    low, high = interval(y_key, points)
    return mean, mean if low is None else low, mean if high is None else high


def _bars(stats: Sequence[tuple[float, float, float]]) -> list[list[float]]:
    """``errorbar``'s ``yerr`` for ``(mean, low, high)`` points: the distances down and up."""
    return [[max(0.0, m - low) for m, low, _ in stats], [max(0.0, high - m) for m, _, high in stats]]


def _series(rows: Sequence[Row], x_key: str, line_keys: Sequence[str], y_key: str = "iia") -> dict:
    """{line label: {x: [row, ...]}} over trained records that have ``y_key``."""
    out: dict[str, dict[Any, list[Row]]] = {}
    for r in rows:
        if not r.get("trained", True) or r.get(y_key) is None or r.get(x_key) is None:
            continue
        label = " / ".join(str(r.get(k)) for k in line_keys)
        out.setdefault(label, {}).setdefault(r[x_key], []).append(r)
    return out


def _line_plot(series: dict, path: Path, xlabel: str, order=None, log2: bool = False) -> Path:
    """Mean IIA against ``xlabel``, a line per label, each point's error bar its 95% interval."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in sorted(series.items()):
        xs = sorted(points, key=order) if order else sorted(points)
        stats = [mean_interval(points[x], "iia") for x in xs]
        positions = [order(x) for x in xs] if order else xs
        ax.errorbar(positions, [s[0] for s in stats], yerr=_bars(stats), marker="o", capsize=3, label=label)
        if order:
            ax.set_xticks(positions, [str(x) for x in xs])
    if log2:
        ax.set_xscale("log", base=2)
    return _save_accuracy_plot(fig, ax, path, xlabel, "IIA (validation), 95% interval")


def _save_accuracy_plot(fig, ax, path: Path, xlabel: str, ylabel: str, legend: bool = True) -> Path:
    """Label an accuracy plot (0 to 1), write it as a PNG and free the figure."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=7)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    """Write a figure as a PNG and free it (also when the file cannot be written)."""
    try:
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return path


def _layer_order(layer: Any) -> int:
    return -1 if str(layer) == "embedding" else int(layer)


def _others(varying: Sequence[str], *drop: str) -> list[str]:
    return [k for k in varying if k not in ("seed", *drop)]


def direction_heatmaps(rows: Sequence[Row], varying: Sequence[str], path: Path) -> Path | None:
    """Mean IIA per (source, target) for each two-model configuration and variable, each cell with its
    95% interval under the mean (over seeds; one run's over its pairs, where known)."""
    two = [r for r in rows if r.get("partner_model") is not None]
    if not two:
        return None
    keys = [*_others(varying, "directions", "cl_directions"), "variable"]
    configs: dict[str, dict[tuple[int, int], list[Row]]] = {}
    for r in two:
        label = ", ".join(f"{k}={r.get(k)}" for k in keys)
        s, t = map(int, r["direction"].split(">"))
        configs.setdefault(label, {}).setdefault((s, t), []).append(r)
    n = len(configs)
    cols = min(n, 3)
    fig, axes = plt.subplots(
        (n + cols - 1) // cols, cols, figsize=(3.6 * cols, 3.2 * ((n + cols - 1) // cols)), squeeze=False
    )
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (label, cells) in zip(axes.flat, sorted(configs.items()), strict=False):
        grid = [
            [
                statistics.fmean(r["iia"] for r in cells[(s, t)]) if (s, t) in cells else float("nan")
                for t in range(2)
            ]
            for s in range(2)
        ]
        ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
        for s in range(2):
            for t in range(2):
                low, high = interval("iia", cells.get((s, t), []))
                shown = f"{grid[s][t]:.2f}" + ("" if low is None else f"\n[{low:.2f}, {high:.2f}]")
                ax.text(
                    t,
                    s,
                    shown,
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="w" if grid[s][t] < 0.6 else "k",
                )
        ax.set_xticks([0, 1], ["into 0", "into 1"])
        ax.set_yticks([0, 1], ["from 0", "from 1"])
        ax.set_title(textwrap.fill(label, 38), fontsize=7)
    return _save(fig, path)


def training_plot(rows: Sequence[Row], varying: Sequence[str], path: Path) -> Path | None:
    """IIA and the aligned (target) model's trial accuracy on its task against the training step of its
    snapshot, each point's error bar its 95% interval."""
    snap = [r for r in rows if r.get("snapshot") is not None and r.get("trained", True)]
    if len({r["snapshot"] for r in snap}) < 2:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    keys = [*_others(varying, "snapshot"), "variable"]
    for name, key in (("IIA", "iia"), (TITLES[TASK_ACC], TASK_ACC)):
        for label, points in sorted(_series(snap, "snapshot", keys, key).items()):
            xs = sorted(points)
            stats = [mean_interval(points[x], key) for x in xs]
            style = "-o" if key == "iia" else "--s"
            ax.errorbar(
                xs,
                [s[0] for s in stats],
                yerr=_bars(stats),
                fmt=style,
                capsize=3,
                label=f"{name}: {label}",
            )
    return _save_accuracy_plot(fig, ax, path, "training step of the snapshot", "accuracy, 95% interval")


def curve_lines(points: Sequence[Row], label_keys: Sequence[str]) -> dict[str, tuple[list, list[float]]]:
    """{label: (steps, IIAs)}: one learning curve per run and track, labelled by the settings that vary.

    ``points`` are evaluations with the run's settings, ``run``, ``direction``, ``variable``, ``step`` and
    ``iia``. A label names ``label_keys``, then the direction and variable where the curves differ in
    them; runs that these leave alike are told apart by their folder.
    """
    tracks: dict[tuple, dict[Any, float]] = {}
    first: dict[tuple, Row] = {}
    for p in points:
        track = (p["run"], *(p[k] for k in CURVE_TRACK))
        tracks.setdefault(track, {})[p["step"]] = p["iia"]
        first.setdefault(track, p)
    keys = [*label_keys, *(k for k in CURVE_TRACK if len({p[k] for p in points}) > 1)]
    labels = {t: ", ".join(f"{k}={first[t].get(k)}" for k in keys) for t in tracks}
    if len(set(labels.values())) < len(labels) or "" in labels.values():
        labels = {t: ", ".join(filter(None, (str(t[0]), label))) for t, label in labels.items()}
    order = sorted(tracks, key=lambda t: (*(natural_order(first[t].get(k)) for k in keys), labels[t]))
    return {labels[t]: (sorted(tracks[t]), [tracks[t][s] for s in sorted(tracks[t])]) for t in order}


def iia_curves(points: Sequence[Row], label_keys: Sequence[str], path: Path) -> Path | None:
    """Validation IIA against the training step: the learning curve of each run and trained track."""
    lines = curve_lines(points, label_keys)
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (steps, iias) in lines.items():
        ax.plot(steps, iias, marker=".", label=label)
    legend = 1 < len(lines) <= MAX_LEGEND_ENTRIES  # one line needs no legend
    if len(lines) > MAX_LEGEND_ENTRIES:
        ax.set_title(f"{len(lines)} learning curves (too many to label)", fontsize=8)
    return _save_accuracy_plot(fig, ax, path, "training step", "IIA (validation)", legend=legend)


def write_plots(
    rows: Sequence[Row], varying: Sequence[str], folder: Path, curves: Sequence[Row] = ()
) -> list[Path]:
    """Every plot the rows and the learning curves (see :func:`curve_lines`) support, as PNG files in ``folder``."""
    written: list[Path] = []
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    curve_plot = iia_curves(curves, varying, folder / "iia_curves.png")
    if curve_plot is not None:
        written.append(curve_plot)
    if "n_units" in varying:
        series = _series(rows, "n_units", [*_others(varying, "n_units", "variables"), "variable"])
        written.append(
            _line_plot(series, folder / "iia_by_n_units.png", "units per variable (n_units)", log2=True)
        )
    if "layer" in varying:
        series = _series(rows, "layer", [*_others(varying, "layer", "site"), "variable"])
        written.append(_line_plot(series, folder / "iia_by_layer.png", "layer", order=_layer_order))
    for plot in (
        direction_heatmaps(rows, varying, folder / "mas_directions.png"),
        training_plot(rows, varying, folder / "iia_over_training.png"),
    ):
        if plot is not None:
            written.append(plot)
    if not written and created:  # a folder that was there (holding other files) stays
        folder.rmdir()
    return written


def scan_heatmap(result: ScanResult, path: Path, steps: int, show: str = "iia") -> Path:
    """``scan.png``: validation IIA (``show="iia"``) or selectivity (``show="selectivity"``: IIA minus the
    best control, cells without a trained control hatched and marked "not controlled") of every cell,
    sites (rows) x positions (columns), one panel per variable, each cell's value written in it and the
    best cell outlined (the report's conventions: off-screen, 0 to 1, viridis; a negative selectivity is
    drawn as 0, its number written)."""
    from matplotlib.patches import Rectangle

    selective = show == "selectivity"
    variables = list(dict.fromkeys(c.variable for c in result.cells))
    rows, cols = result.sites, result.positions
    fig, axes = plt.subplots(
        1,
        len(variables),
        figsize=(1.1 * len(cols) * len(variables) + 2.4, 0.42 * len(rows) + 1.6),
        squeeze=False,
    )
    best = result.best()
    image = None
    for ax, variable in zip(axes[0], variables, strict=True):
        grid = [[float("nan")] * len(cols) for _ in rows]
        blank = []
        for c in result.cells:
            if c.variable == variable:
                value = result.selectivity(c) if selective else c.iia
                i, j = rows.index(c.site), cols.index(c.position)
                if value is None:
                    blank.append((i, j))
                else:
                    grid[i][j] = value
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                if value == value:
                    ax.text(
                        j,
                        i,
                        f"{value:.2f}",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if value < 0.6 else "black",
                    )
        for i, j in blank:  # no trained control: no selectivity
            ax.add_patch(
                Rectangle(
                    (j - 0.5, i - 0.5), 1, 1, facecolor="0.92", edgecolor="0.6", hatch="///", linewidth=0
                )
            )
            ax.text(j, i, "not\ncontrolled", ha="center", va="center", fontsize=6, color="0.3")
        if best.variable == variable:
            i, j = rows.index(best.site), cols.index(best.position)
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
        ax.set_xticks(range(len(cols)), cols, fontsize=8)
        ax.set_yticks(range(len(rows)), rows, fontsize=8)
        ax.set_xlabel("position")
        shown = "selectivity (IIA minus the best control)" if selective else "IIA (validation)"
        title = f"{variable}: {shown}" if len(variables) > 1 else shown
        controls = [
            v for c in result.cells if c.variable == variable for v in c.controls.values() if v is not None
        ]
        control = f"\ncontrols: at most {max(controls):.2f}" if controls and not selective else ""
        if selective:
            control = f"\ncontrols {', '.join(result.trained_controls)} at the top cells by IIA"
        ax.set_title(f"{title}, {steps} steps a cell{control}", fontsize=9)
    assert image is not None, "a scan has cells"
    fig.colorbar(image, ax=axes[0].tolist(), fraction=0.04, pad=0.02)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    atomic.write_bytes(path, buffer.getvalue())
    return path
