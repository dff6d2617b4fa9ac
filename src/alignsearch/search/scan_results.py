"""What a scan gives: its cells (:class:`ScanCell`, one per site, position and variable, from the cell's
run: :func:`scan_cells`) and the whole (:class:`ScanResult`: ranked, as a table, ``scan.csv`` and
``scan.json``), and a cell in a line (:func:`describe`).

A cell is **controlled** when it has a score of one of the scan's trained controls (``scan.top_controls``,
trained at the ``scan.controls_top`` best cells by IIA); its **selectivity** is its IIA minus the best
(highest) of all its controls, ``random_subspace`` included. A cell with only ``random_subspace`` (the
cheap control every cell has) has no selectivity: it is None, empty in ``scan.csv``."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignsearch.search.results import RunStatus
from alignsearch.search.run import RunResult
from alignsearch.tables import markdown_table, number


@dataclass
class ScanCell:
    """One cell of a scan and one variable: its validation IIA, each control's, and what it cost."""

    site: str
    position: str
    variable: str
    iia: float
    token_iia: float | None
    iia_step0: float | None
    controls: dict[str, float | None]
    steps: int
    seconds: dict[str, float]
    """The cell's run's time by phase (``results.json``'s ``seconds``)."""
    folder: Path
    status: RunStatus
    track: str | None = None
    """The record's track (``0>0/count``): what the scores of controls run later are keyed by."""

    def controlled(self, trained: Sequence[str]) -> bool:
        """Whether the cell has a score of one of the ``trained`` controls (``scan.top_controls``)."""
        return any(self.controls.get(c) is not None for c in trained)

    def selectivity(self, trained: Sequence[str]) -> float | None:
        """IIA minus the best (highest) of the cell's controls where it is controlled (a score of one of
        the ``trained`` controls), else None: a cell with only ``random_subspace`` has no selectivity."""
        if not self.controlled(trained):
            return None
        return self.iia - max(v for v in self.controls.values() if v is not None)

    def row(self, controls: Sequence[str], trained: Sequence[str] = ()) -> dict[str, Any]:
        """The cell as a row of ``scan.csv`` (``trained``: the scan's trained controls, and with them a
        ``selectivity`` column)."""
        return {
            "site": self.site,
            "position": self.position,
            "variable": self.variable,
            "iia": round(self.iia, 4),
            **{f"iia_control_{c}": _rounded(self.controls.get(c)) for c in controls},
            **({"selectivity": _rounded(self.selectivity(trained))} if trained else {}),
            "token_iia": _rounded(self.token_iia),
            "iia_step0": _rounded(self.iia_step0),
            "steps": self.steps,
            "seconds": round(sum(self.seconds.values()), 3),
            "seconds_steps": round(self.seconds.get("steps", 0.0), 3),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclass
class ScanResult:
    """A finished scan: its cells (site-major, then position, then variable), and the full alignment at
    the best cell when ``then_align`` asked for it.

    ``controls`` are every control a cell can have a score of (``scan.controls``, which every cell has,
    then the trained ones); ``trained_controls`` those trained at the best cells (``scan.top_controls``;
    empty with ``scan.controls_top=0``): with them the cells are ranked by selectivity, and ``scan.csv``
    has a ``selectivity`` column."""

    sites: list[str]
    positions: list[str]
    controls: tuple[str, ...]
    cells: list[ScanCell]
    folder: Path
    seconds: dict[str, float] = field(default_factory=dict)
    """Where the scan's time went: ``total``, ``states`` (the shared states), ``steps`` (every cell's
    training steps), ``cells`` (every cell's run, steps included), ``controls`` (the trained controls at
    the best cells)."""
    aligned: RunResult | None = None
    trained_controls: tuple[str, ...] = ()
    controls_top: int = 0
    """At how many of the best cells by IIA the trained controls were asked for."""

    @property
    def columns(self) -> list[str]:
        selectivity = ["selectivity"] if self.trained_controls else []
        return [
            "site", "position", "variable", "iia", *(f"iia_control_{c}" for c in self.controls),
            *selectivity, "token_iia", "iia_step0", "steps", "seconds", "seconds_steps",
        ]  # fmt: skip

    def controlled(self) -> list[ScanCell]:
        """The cells with a trained control, in scan order."""
        return [c for c in self.cells if c.controlled(self.trained_controls)]

    def ranked_by_iia(self) -> list[ScanCell]:
        """The cells by IIA: highest first, then the lowest best control, then scan order."""
        order = {id(c): i for i, c in enumerate(self.cells)}
        return sorted(
            self.cells,
            key=lambda c: (
                -c.iia,
                max([v for v in c.controls.values() if v is not None], default=0.0),
                order[id(c)],
            ),
        )

    def ranked(self) -> list[ScanCell]:
        """The cells from the best: the controlled ones first, by selectivity (then IIA, then scan order),
        then the rest by IIA (:meth:`ranked_by_iia`). Without trained controls: by IIA."""
        by_iia = self.ranked_by_iia()
        controlled = [c for c in by_iia if c.controlled(self.trained_controls)]
        controlled.sort(key=lambda c: -(c.selectivity(self.trained_controls) or 0.0))  # stable: IIA order
        return controlled + [c for c in by_iia if not c.controlled(self.trained_controls)]

    def best(self) -> ScanCell:
        """The best cell: the highest selectivity where trained controls ran, else the highest IIA (where
        ``then_align`` aligns)."""
        return self.ranked()[0]

    def best_by_iia(self) -> ScanCell:
        """The cell with the highest validation IIA."""
        return self.ranked_by_iia()[0]

    def selectivity(self, cell: ScanCell) -> float | None:
        """``cell``'s IIA minus its best control where it has a trained control, else None."""
        return cell.selectivity(self.trained_controls)

    def iia(self, site: str, position: str, variable: str | None = None) -> float:
        """One cell's validation IIA (its first variable unless named)."""
        for c in self.cells:
            if c.site == site and c.position == position and variable in (None, c.variable):
                return c.iia
        raise KeyError(f"no cell {site} @ {position}")

    def table(self, top: int | None = None) -> str:
        """The cells as a markdown table, best first (``top``: only so many): each control, and with
        trained controls the selectivity (empty for a cell without them)."""
        selectivity = ["selectivity"] if self.trained_controls else []
        header = [
            "",
            "site",
            "position",
            "variable",
            "IIA",
            *(f"control: {c}" for c in self.controls),
            *selectivity,
            "steps",
        ]
        rows = [
            [
                i + 1,
                c.site,
                c.position,
                c.variable,
                number(c.iia),
                *(number(c.controls.get(k)) for k in self.controls),
                *([number(self.selectivity(c))] if selectivity else []),
                c.steps,
            ]
            for i, c in enumerate(self.ranked()[:top])
        ]
        return markdown_table(header, rows)

    def controlled_line(self) -> str | None:
        """Which cells the trained controls ran at, in a line (None without trained controls)."""
        if not self.trained_controls:
            return None
        n = len(first_per_cell(self.controlled()))
        cells = len(first_per_cell(self.cells))
        which = f"all {n} cells" if n == cells else f"the top {n} cells by IIA"
        others = "" if n == cells else "; the others have none (no selectivity)"
        return f"controls {', '.join(self.trained_controls)} trained at {which}{others}"

    def csv(self) -> str:
        """``scan.csv``: a row per cell and variable, in scan order."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, self.columns)
        writer.writeheader()
        for c in self.cells:
            writer.writerow(c.row(self.controls, self.trained_controls))
        return buffer.getvalue()

    def summary(self) -> dict[str, Any]:
        """``scan.json``: the grid, the best cell (by selectivity where trained controls ran) and the best
        by IIA, the time."""
        best, trained = self.best(), self.trained_controls
        return {
            "sites": self.sites,
            "positions": self.positions,
            "controls": list(self.controls),
            "trained_controls": list(trained),
            "controls_top": self.controls_top,
            "cells": [c.row(self.controls, trained) for c in self.cells],
            "best": best.row(self.controls, trained),
            "best_by_iia": self.best_by_iia().row(self.controls, trained),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def first_per_cell(cells: list[ScanCell]) -> list[ScanCell]:
    """One cell per (site, position): a cell's variables share one run."""
    seen, out = set(), []
    for c in cells:
        if (c.site, c.position) not in seen:
            seen.add((c.site, c.position))
            out.append(c)
    return out


def scan_cells(result: RunResult, site: str, position: str, folder: Path) -> list[ScanCell]:
    """A cell's rows: one per trained record (variable) of its run."""
    return [
        ScanCell(
            site=site,
            position=position,
            variable=r.variable,
            iia=r.iia,
            token_iia=r.token_iia,
            iia_step0=r.iia_step0,
            controls={name: score for name, score in r.controls.items()},
            steps=result.steps,
            seconds=dict(result.results.seconds or {}),
            folder=folder,
            status=result.status,
            track=r.name,
        )
        for r in result.records
        if r.trained
    ]


def describe(cell: ScanCell, controls: Sequence[str], variable: bool = False) -> str:
    """A cell in a line: ``layer.1 @ last: IIA 0.983 (random_subspace 0.011), 50 steps, 1.3 s``
    (``variable``: with the variable's name after the position)."""
    shown = ", ".join(f"{c} {number(cell.controls.get(c))}" for c in controls)
    named = f" {cell.variable}" if variable else ""
    cost = (
        str(RunStatus.ALREADY_DONE)
        if cell.status == RunStatus.ALREADY_DONE
        else f"{cell.steps} steps, {sum(cell.seconds.values()):.1f} s"
    )
    return (
        f"{cell.site} @ {cell.position}{named}: IIA {number(cell.iia)}"
        + (f" ({shown})" if shown else "")
        + f", {cost}"
    )


def describe_control(
    cells: Sequence[ScanCell], control: str, seconds: float | None, steps: int, variable: bool = False
) -> str:
    """A trained control at a cell in a line: ``layer.1 @ last: shuffled IIA 0.412 (the cell's 0.983),
    50 steps, 3.1 s`` (``seconds`` None: found done; ``variable``: each variable's)."""
    first = cells[0]
    shown = "; ".join(
        (f"{c.variable} " if variable else "")
        + f"{control} IIA {number(c.controls.get(control))} (the cell's {number(c.iia)})"
        for c in cells
    )
    cost = str(RunStatus.ALREADY_DONE) if seconds is None else f"{steps} steps, {seconds:.1f} s"
    return f"{first.site} @ {first.position}: {shown}, {cost}"
