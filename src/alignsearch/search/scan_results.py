"""What a scan gives: its cells (:class:`ScanCell`, one per site, position and variable, from the cell's
run: :func:`scan_cells`) and the whole (:class:`ScanResult`: ranked, as a table, ``scan.csv`` and
``scan.json``), and a cell in a line (:func:`describe`)."""

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

    def row(self, controls: Sequence[str]) -> dict[str, Any]:
        """The cell as a row of ``scan.csv``."""
        return {
            "site": self.site,
            "position": self.position,
            "variable": self.variable,
            "iia": round(self.iia, 4),
            **{f"iia_control_{c}": _rounded(self.controls.get(c)) for c in controls},
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
    the best cell when ``then_align`` asked for it."""

    sites: list[str]
    positions: list[str]
    controls: tuple[str, ...]
    cells: list[ScanCell]
    folder: Path
    seconds: dict[str, float] = field(default_factory=dict)
    """Where the scan's time went: ``total``, ``states`` (the shared states), ``steps`` (every cell's
    training steps), ``cells`` (every cell's run, steps included)."""
    aligned: RunResult | None = None

    @property
    def columns(self) -> list[str]:
        return [
            "site", "position", "variable", "iia", *(f"iia_control_{c}" for c in self.controls),
            "token_iia", "iia_step0", "steps", "seconds", "seconds_steps",
        ]  # fmt: skip

    def ranked(self) -> list[ScanCell]:
        """The cells from the best: highest IIA first, then the lowest best control, then scan order."""
        order = {id(c): i for i, c in enumerate(self.cells)}
        return sorted(
            self.cells,
            key=lambda c: (
                -c.iia,
                max([v for v in c.controls.values() if v is not None], default=0.0),
                order[id(c)],
            ),
        )

    def best(self) -> ScanCell:
        """The cell with the highest validation IIA."""
        return self.ranked()[0]

    def iia(self, site: str, position: str, variable: str | None = None) -> float:
        """One cell's validation IIA (its first variable unless named)."""
        for c in self.cells:
            if c.site == site and c.position == position and variable in (None, c.variable):
                return c.iia
        raise KeyError(f"no cell {site} @ {position}")

    def table(self, top: int | None = None) -> str:
        """The cells as a markdown table, best first (``top``: only so many)."""
        header = [
            "",
            "site",
            "position",
            "variable",
            "IIA",
            *(f"control: {c}" for c in self.controls),
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
                c.steps,
            ]
            for i, c in enumerate(self.ranked()[:top])
        ]
        return markdown_table(header, rows)

    def csv(self) -> str:
        """``scan.csv``: a row per cell and variable, in scan order."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, self.columns)
        writer.writeheader()
        for c in self.cells:
            writer.writerow(c.row(self.controls))
        return buffer.getvalue()

    def summary(self) -> dict[str, Any]:
        """``scan.json``: the grid, the best cell, the time."""
        best = self.best()
        return {
            "sites": self.sites,
            "positions": self.positions,
            "controls": list(self.controls),
            "cells": [c.row(self.controls) for c in self.cells],
            "best": best.row(self.controls),
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
