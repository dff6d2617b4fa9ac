"""Imports run one way: entry points -> alignment runs and training -> the maths, models and tasks ->
errors and seeding. A module that imports from a layer above its own fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import alignsearch

PACKAGE = Path(alignsearch.__file__).parent
LAYERS = [
    {"errors", "seeding", "atomic", "configurable", "tables", "naming", "intervals"},
    {"file_data", "controls"},
    {"components"},
    {"settings"},
    {"alignment", "models", "tasks", "engine"},
    {"text", "similarity", "loggers", "call_checks"},
    {"training", "search"},
    {"zoo"},
    {"inputs"},  # every kind of input as the run core takes it: what cli and api both call
    {"arguments"},  # the Python API's arguments checked and turned into those inputs (api.py's helpers)
    {"report"},  # run folders into tables and plots (every plot: the scan's heatmap too)
    {"findings"},  # the papers' claims judged on the report's rows
    {
        "cli",
        "api",
        "reproduce",
        "scan",
        "sites",
    },  # entry points: these may use each other
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}
TOP = len(LAYERS) - 1
HANDED_OVER = {"zoo/__init__.py": {"cli"}}
"""The one import allowed to point up: ``zoo.main``, kept for its callers, imports the command it hands
over to (:mod:`alignsearch.cli.zoo`) when it is called. A package's ``__main__.py`` (``python -m``) is an
entry point, in the top layer."""


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
    rank = TOP if path.name == "__main__.py" else RANK[unit]
    handed_over = HANDED_OVER.get(path.relative_to(PACKAGE).as_posix(), set())
    upward = sorted(
        other
        for other in imported_units(path) - {unit} - handed_over
        if RANK.get(other, 0) > rank or (RANK.get(other, 0) == rank and rank != TOP)
    )
    assert not upward, f"{unit} (layer {rank}) imports {upward} from its own layer or above"


def module_name(path: Path) -> str:
    """``search/fit.py`` -> ``alignsearch.search.fit``; ``search/__init__.py`` -> ``alignsearch.search``."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def only_for_type_checkers(tree: ast.AST) -> set[int]:
    """The nodes under ``if TYPE_CHECKING:``: imports a type checker reads and Python never runs."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test).split("."):
            skipped |= {id(inner) for statement in node.body for inner in ast.walk(statement)}
    return skipped


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The modules of alignsearch (among ``known``) that a module imports when it runs, lazy imports
    inside functions included: ``from alignsearch.search import fit`` imports ``alignsearch.search.fit``;
    ``from alignsearch.models import GRU``, ``alignsearch.models`` (its ``__init__``)."""
    tree = ast.parse(path.read_text())
    skipped = only_for_type_checkers(tree)
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: from . import x, from ..models import y
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                if f"{module}.{alias.name}" in known:
                    found.add(f"{module}.{alias.name}")
                elif module in known:
                    found.add(module)
    return found - {name}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each group of modules that import one another, directly or through others (Tarjan's strongly
    connected components of more than one module), as a cycle through them.

    >>> import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    [['a', 'b', 'c', 'a']]
    >>> import_cycles({"a": {"b"}, "b": set()})
    []
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph.get(module, ())):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                other = stack.pop()
                group.append(other)
                if other == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return [cycle_through(graph, group) for group in sorted(groups)]


def cycle_through(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """One cycle among ``group`` (modules that import one another), from its first module back to it."""
    start, inside = group[0], set(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        module = queue.pop(0)
        for other in sorted(graph[module] & inside):
            if other == start:
                return [*paths[module], start]
            if other not in paths:
                paths[other] = [*paths[module], other]
                queue.append(other)
    return group


def test_no_module_imports_itself_through_others() -> None:
    """No import cycle anywhere in alignsearch, between packages or inside one, counting the imports made
    inside functions (which only put a cycle off until the function runs); those under
    ``if TYPE_CHECKING:`` never run and do not count. Break one by moving the shared piece down into a
    module both import, or by passing it in."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: imported_modules(path, set(modules)) for name, path in modules.items()}
    cycles = import_cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


@pytest.mark.parametrize("unit", ["report", "findings"])
def test_the_report_and_the_findings_import_nothing_from_the_command_line(unit: str) -> None:
    """The report and the findings are libraries the commands call (:mod:`alignsearch.cli.report`,
    ``cli/reproduce.py``); only a ``python -m`` shim (``report/__main__.py``) hands over to its command."""
    for path in sorted((PACKAGE / unit).rglob("*.py")):
        if path.name != "__main__.py":
            assert "cli" not in imported_units(path), f"{path.relative_to(PACKAGE)} imports from cli"


def test_the_api_imports_nothing_from_the_command_line() -> None:
    """``api`` and ``cli`` both turn their input into the run core's typed inputs: neither uses the other."""
    assert "cli" not in imported_units(PACKAGE / "api.py")
