"""Imports run one way: entry points -> alignment runs and training -> the maths, models and tasks ->
errors and seeding. A module that imports from a layer above its own fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import alignsearch

PACKAGE = Path(alignsearch.__file__).parent
LAYERS = [
    {"errors", "seeding", "atomic", "configurable", "tables", "naming"},
    {"file_data", "controls"},
    {"components"},
    {"settings"},
    {"alignment", "models", "tasks", "engine"},
    {"text", "similarity", "loggers", "call_checks"},
    {"training", "search"},
    {"zoo"},
    {"inputs"},  # every kind of input as the run core takes it: what cli and api both call
    {
        "cli",
        "api",
        "report",
        "report_plots",
        "reproduce",
        "scan",
        "sites",
    },  # entry points: these may use each other
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}
TOP = len(LAYERS) - 1


def unit_of(path: Path) -> str:
    """``search/fit.py`` -> ``search``; ``zoo.py`` -> ``zoo``."""
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def imported_units(path: Path) -> set[str]:
    """The top-level units of alignsearch a module imports (anywhere in it, lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "alignsearch":
            parts = node.module.split(".")
            found |= {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("alignsearch.")}
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_every_unit_has_a_layer() -> None:
    assert {unit_of(p) for p in MODULES} <= set(RANK)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    unit = unit_of(path)
    rank = RANK[unit]
    upward = sorted(
        other
        for other in imported_units(path) - {unit}
        if RANK.get(other, 0) > rank or (RANK.get(other, 0) == rank and rank != TOP)
    )
    assert not upward, f"{unit} (layer {rank}) imports {upward} from its own layer or above"


def test_the_api_imports_nothing_from_the_command_line() -> None:
    """``api`` and ``cli`` both turn their input into the run core's typed inputs: neither uses the other."""
    assert "cli" not in imported_units(PACKAGE / "api.py")
