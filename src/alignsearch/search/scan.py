"""Where does the variable live? A short alignment at every site x position, and a table of their IIAs.

    result = run_scan(models, alignment, run, hardware, out_dir, ScanSettings(steps=50), data=data)
    print(result.table(3))       # the best cells
    result.best()                # ScanCell(site='layer.1', position='last', iia=0.98, ...)

A **cell** is one site (``embedding``, ``layer.<i>``, any site the model names or a module path) and one
:class:`~alignsearch.settings.Position` (``last``, ``-2``, ``marker:<text>[:<offset>]``, or ``any``:
each pair's own). Each cell is a run of the run core (:func:`~alignsearch.search.run.run_alignment`)
with the scan's own settings (site, position, ``alignment.max_steps = scan.steps``, ``alignment.controls
= scan.controls``) and the run's for the rest, in ``out_dir/cells/<site>@<position>/``: the
``results.json`` of ``python run_alignment.py <the same overrides> site=<site> position=<position>
alignment.max_steps=<steps> alignment.controls=[random_subspace]``. A finished cell is found there and
reused, an interrupted one resumes from its checkpoint: a scan resumes like every run.

The scan writes ``scan.csv`` (a row per cell and variable, updated after each cell), ``scan.png`` (a
heatmap, sites x positions, drawn by the ``heatmap`` function it is given: the command line and the API
give :func:`alignsearch.report.plots.scan_heatmap`), ``scan.json`` (the settings, the cells and where the
time went) and prints its best cells; ``scan.then_align`` then runs the full alignment (the run's own
alignment settings) at the best cell, in ``out_dir/best/``.

**What a cell reuses.** One process, one read of the data, the models loaded once. On text pairs
(:class:`ScanPairs`) every position is a repositioning of the same tokenised pairs
(:func:`~alignsearch.text.pairs.reposition`), and the frozen model reads each pair once for all scanned
sites (:class:`SiteStates`): one pass over the source prompts gives the swapped-in vectors of every site
at every position, one pass over the base sequences the target states of every site the prefix cache can
start from (``alignment.prefix_cache``: GPT-2 and Llama at ``embedding`` or ``layer.<i>``), so each
training step runs only the blocks above its cell's site. They are computed when the first cell that
trains needs them, for the sites and positions of the cells still to run (a finished scan computes
nothing). A cell then costs its steps, its evaluations and the run core's bookkeeping. Task models draw
their pairs per cell, as their runs do (cheap: the causal model and a small model).

This module runs a scan (its cells, their folders, the checks); the state cache is
:mod:`alignsearch.search.scan_states`, the cells and the result :mod:`alignsearch.search.scan_results`.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from alignsearch import atomic
from alignsearch.components import alignment_choices
from alignsearch.errors import ConfigError
from alignsearch.models import SequenceModel
from alignsearch.naming import with_digest
from alignsearch.search.pairs import PrefixCache
from alignsearch.search.planning import plan_run
from alignsearch.search.records import records_table
from alignsearch.search.results import RunStatus
from alignsearch.search.run import run_alignment
from alignsearch.search.run_folder import RESULTS
from alignsearch.search.scan_results import ScanCell, ScanResult, describe, first_per_cell, scan_cells
from alignsearch.search.scan_states import ScanPairs, SiteStates
from alignsearch.search.spec import RunData, RunModel
from alignsearch.search.text_data import TextPairSource
from alignsearch.settings import (
    ANY,
    AlignmentSettings,
    HardwareSettings,
    RunSettings,
    ScanSettings,
    position_of,
)
from alignsearch.tasks.counterfactual import check_position

Heatmap = Callable[[ScanResult, Path, int], Path]
"""Draws ``scan.png``: ``heatmap(result, path, steps)`` (:func:`alignsearch.report.plots.scan_heatmap`)."""

CSV, PNG, SUMMARY = "scan.csv", "scan.png", "scan.json"
CELLS, BEST = "cells", "best"
"""Subfolders of a scan: one folder per cell; the full alignment at the best cell."""
TEXT_POSITIONS = ("last", "-2", "-3")
"""The positions a scan of text pairs takes when none are given: the last three tokens of each prompt."""
TASK_POSITIONS = (ANY,)
"""... of task pairs: each pair's own positions (drawn among each sequence's valid ones)."""
STATES_DIR = "prefix_cache"
"""The scan folder's subfolder for cached states beyond ``alignment.prefix_cache_mb`` (removed at the end)."""
LAYER_SITE = re.compile(r"layer\.(\d+)")


def default_sites(model: SequenceModel) -> list[str]:
    """The sites a scan takes when none are given: the model's residual stream, ``embedding`` and every
    ``layer.<i>`` it names (component sites and module paths only when asked for)."""
    return [s for s in model.sites if s == "embedding" or LAYER_SITE.fullmatch(s)]


def cell_run(run: RunSettings, site: str, position: str) -> RunSettings:
    """The run settings of a cell: the run's, at ``site`` (``layer.<i>`` and ``embedding`` as ``layer``,
    so that a cell is the run ``layer=<i>`` names) and ``position`` (``any``: each pair's own)."""
    layer = LAYER_SITE.fullmatch(site)
    at = None if position == ANY else position
    if site == "embedding" or layer:
        return dataclasses.replace(run, layer=int(layer.group(1)) if layer else site, site=None, position=at)
    return dataclasses.replace(run, site=site, position=at)


CELL_CHARS, CELL_DIGEST_BYTES = 80, 4
"""A cell folder name with characters a file name should not have keeps its first 80 characters and ends
in a hash (8 hex digits) of the cell: the names of the cells existing scans hold."""


def cell_folder(site: str, position: str) -> str:
    """A cell's folder name: ``layer.1@last``, ``layer.1@-2``; characters a file name should not have are
    replaced, and then a digest of the cell keeps names apart.

    >>> cell_folder("layer.1", "-2"), cell_folder("transformer.h.0.mlp", "marker:. how:-1")
    ('layer.1@-2', 'transformer.h.0.mlp@marker_._how_-1-f3263b6f')
    """
    name = f"{site}@{position}"
    safe = re.sub(r"[^A-Za-z0-9._@+-]", "_", name)
    if safe == name:
        return name
    return with_digest(safe, CELL_CHARS + 1 + 2 * CELL_DIGEST_BYTES, CELL_DIGEST_BYTES, of=name)


def check_scan(
    models: Sequence[RunModel],
    alignment: AlignmentSettings,
    run: RunSettings,
    scan: ScanSettings,
    data: RunData | None = None,
) -> tuple[list[str], list[str]]:
    """The scan's sites and positions, checked against the models and the data before any work (a
    ConfigError keyed ``scan.sites``, ``scan.positions`` or by the run's own keys)."""
    if len(models) != 1 or alignment.models != 1:
        raise ConfigError(
            "alignment",
            alignment.name,
            f"a one-model alignment ({', '.join(alignment_choices(1))}) for a scan",
        )
    if data is not None and getattr(data.source, "kind", None) != "pairs":
        raise ConfigError(
            "data", getattr(data.source, "kind", None), "data=pairs for a scan (positions are in prompts)"
        )
    model = models[0]
    sites = list(scan.sites) if scan.sites else default_sites(model.model)
    if not sites:
        raise ConfigError(
            "scan.sites", None, f"a list of sites: the {model.model.name} names none (module paths)"
        )
    positions = list(scan.positions or (TEXT_POSITIONS if data is not None else TASK_POSITIONS))
    source = data.source if data is not None else None
    for spec in positions:
        position = position_of(spec)
        if position is None:
            continue
        try:
            if source is not None:
                assert isinstance(source, TextPairSource)  # data=pairs (checked above)
                source.at(position)
            else:
                if alignment.stepwise:
                    raise ConfigError("position", spec, "any with alignment.stepwise=true")
                assert model.task is not None  # a task model: no data
                check_position(model.task.vocab, position)
        except ConfigError as e:
            raise ConfigError("scan.positions", spec, e.allowed) from None
    for site in sites:  # every site planned once (its width, the units): the positions are checked above
        try:
            plan_run(models, _cell_alignment(alignment, scan), cell_run(run, site, ANY), source)
        except ConfigError as e:
            if e.key == "layer":  # a layer.<i> past the model's blocks
                named = ", ".join(model.model.sites)
                raise ConfigError(
                    "scan.sites", site, f"a site of the {model.model.name} ({named}) or a module path"
                ) from None
            if e.key != "site":
                raise
            raise ConfigError("scan.sites", site, e.allowed) from None
    return sites, positions


def _cell_alignment(alignment: AlignmentSettings, scan: ScanSettings) -> AlignmentSettings:
    return dataclasses.replace(alignment, max_steps=scan.steps, controls=scan.controls)


def run_scan(
    models: Sequence[RunModel],
    alignment: AlignmentSettings,
    run: RunSettings,
    hardware: HardwareSettings,
    out_dir: Path,
    scan: ScanSettings,
    *,
    data: RunData | None = None,
    verbose: bool = True,
    on_cell: Callable[[ScanCell], None] | None = None,
    heatmap: Heatmap | None = None,
) -> ScanResult:
    """Scan every site x position of ``scan`` (see the module docstring) in ``out_dir``: each cell a short
    alignment by the run core, ``scan.csv``, ``scan.png`` (drawn by ``heatmap``; None: no plot) and
    ``scan.json`` written, the best cells printed (``verbose``), and with ``scan.then_align`` the full
    alignment at the best cell in ``out_dir/best``. ``on_cell`` sees each cell as it finishes."""
    started = time.perf_counter()
    sites, positions = check_scan(models, alignment, run, scan, data)
    out_dir = Path(out_dir)
    cells_alignment = _cell_alignment(alignment, scan)
    quiet = dataclasses.replace(hardware, progress_bar=False)  # a line per cell instead
    grid = [(site, position) for site in sites for position in positions]
    pending = [(s, p) for s, p in grid if not (out_dir / CELLS / cell_folder(s, p) / RESULTS).is_file()]
    cache = PrefixCache(alignment.prefix_cache_mb, out_dir / STATES_DIR)
    states = None
    if data is not None:
        pairs = data.source
        assert isinstance(pairs, TextPairSource)  # data=pairs (check_scan)
        states = SiteStates(
            pairs.data,
            [m.model for m in models],
            list(dict.fromkeys(run_site(run, s) for s, _ in pending)),
            list(dict.fromkeys(p for _, p in pending)),
            cache,
            with_bases=alignment.prefix_cache,
        )
        data = dataclasses.replace(data, source=ScanPairs(pairs.data, pairs.variable, states=states))
    result = ScanResult(sites, positions, tuple(scan.controls), [], out_dir)
    try:
        for n, (site, position) in enumerate(grid, 1):
            folder = out_dir / CELLS / cell_folder(site, position)
            done = run_alignment(
                models,
                cells_alignment,
                cell_run(run, site, position),
                quiet,
                folder,
                data=data,
                verbose=False,  # the scan's own line per cell says what it did
            )
            cells = scan_cells(done, site, position, folder)
            result.cells += cells
            atomic.write_text(out_dir / CSV, result.csv())
            for cell in cells:
                if verbose:
                    shown = describe(cell, scan.controls, len(cells) > 1)
                    print(f"[{n}/{len(grid)}] {shown}", flush=True)
                if on_cell is not None:
                    on_cell(cell)
        result.seconds = {
            "total": time.perf_counter() - started,
            "states": states.seconds if states is not None else 0.0,
            "steps": sum(c.seconds.get("steps", 0.0) for c in first_per_cell(result.cells)),
            "cells": sum(sum(c.seconds.values()) for c in first_per_cell(result.cells)),
        }
        if heatmap is not None:
            heatmap(result, out_dir / PNG, scan.steps)
        atomic.write_json(out_dir / SUMMARY, result.summary())
        if verbose:
            drawn = f", {out_dir / PNG}" if heatmap is not None else ""
            print(f"best cells ({out_dir / CSV}{drawn}):", flush=True)
            print(result.table(scan.top), flush=True)
        if scan.then_align:
            best = result.best()
            if verbose:
                print(
                    f"the full alignment at the best cell, {best.site} @ {best.position}: {out_dir / BEST}",
                    flush=True,
                )
            result.aligned = aligned = run_alignment(
                models, alignment, cell_run(run, best.site, best.position), hardware, out_dir / BEST,
                data=data, verbose=verbose,
            )  # fmt: skip
            if verbose:
                said = RunStatus.ALREADY_DONE if aligned.status == RunStatus.ALREADY_DONE else "results"
                print(f"{said}: {out_dir / BEST / RESULTS}", flush=True)
                print(records_table(aligned.records), flush=True)
                print(f"{aligned.steps} steps (best at {aligned.results.best_step})", flush=True)
    finally:
        cache.close()
    return result


def run_site(run: RunSettings, site: str) -> str:
    """The site name a cell's run aligns (as :meth:`RunSettings.site_name` gives it)."""
    return cell_run(run, site, ANY).site_name()
