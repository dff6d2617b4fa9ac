"""Where does the variable live? A short alignment at every site x position, and a table of their IIAs.

    result = run_scan(models, alignment, run, hardware, out_dir, ScanSettings(steps=50), data=data)
    print(result.table(3))       # the best cells, by selectivity
    result.best()                # ScanCell(site='layer.1', position='last', iia=0.98, ...)
    result.best_by_iia()         # the highest IIA, controlled or not

A **cell** is one site (``embedding``, ``layer.<i>``, any site the model names or a module path) and one
:class:`~alignsearch.settings.Position` (``last``, ``-2``, ``marker:<text>[:<offset>]``, or ``any``:
each pair's own). Each cell is a run of the run core (:func:`~alignsearch.search.run.run_alignment`)
with the scan's own settings (site, position, ``alignment.max_steps = scan.steps``, ``alignment.controls
= scan.controls``) and the run's for the rest, in ``out_dir/cells/<site>@<position>/``: the
``results.json`` of ``python run_alignment.py <the same overrides> site=<site> position=<position>
alignment.max_steps=<steps> alignment.controls=[random_subspace]``. A finished cell is found there and
reused, an interrupted one resumes from its checkpoint: a scan resumes like every run.

**Trained controls at the best cells.** A learned rotation can steer even an untrained model's next
token part of the time, so a high IIA alone can be a false finding, and the cheap ``random_subspace``
(an evaluation of untrained rotations) does not catch it. Once every cell has run, the scan trains
``scan.top_controls`` (default ``shuffled`` and ``untrained``: the alignment trained on pairs whose
source vectors are shuffled, and on untrained copies of the models; :mod:`alignsearch.search.controls`)
at the ``scan.controls_top`` (default 3; 0: none) best cells by IIA, one per site x position, with the
cells' own steps, plan and seed. They are the run core's controls
(:func:`~alignsearch.search.controls.run_controls`) called for the cell's plan and models: running the
cell's run again with more ``alignment.controls`` would not do, as the controls are part of a run's
identity (its finished alignment would be moved aside and trained again). Each keeps its checkpoints in
``cells/<cell>/controls/<name>/``, as a run's controls do, and writes its scores there to
``scan_control.json`` (atomically, with the identity of the cell's run) when done: a scan run again reads
them instead of training again, an interrupted one resumes from the checkpoint. Those cells are
*controlled*: their selectivity is the IIA minus the best (highest) of their controls,
``random_subspace`` included; the others have none. The cells rank controlled first, by selectivity,
then the rest by IIA; :meth:`ScanResult.best` is the first (where ``then_align`` aligns),
:meth:`ScanResult.best_by_iia` the highest IIA.

The scan writes ``scan.csv`` (a row per cell and variable, updated after each cell and each trained
control: ``iia_control_<name>`` per control, empty where a cell has none, and ``selectivity``, empty for
a cell without a trained control), ``scan.png`` (a heatmap, sites x positions, of ``scan.show``: the
selectivity where trained controls ran, the cells without them hatched, else the IIA; drawn by the
``heatmap`` function it is given: the command line and the API give
:func:`alignsearch.report.plots.scan_heatmap`), ``scan.json`` (the settings, the cells, the best cell and
the best by IIA, and where the time went, the trained controls' included) and prints a line per cell
and per trained control and its best cells; ``scan.then_align`` then runs the full alignment (the run's
own alignment settings) at the best cell, in ``out_dir/best/``.

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
import functools
import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from alignsearch import atomic
from alignsearch.components import alignment_choices
from alignsearch.engine.trainer import load_weights_only
from alignsearch.errors import ConfigError
from alignsearch.models import SequenceModel
from alignsearch.naming import with_digest
from alignsearch.search.controls import run_controls
from alignsearch.search.pairs import PrefixCache
from alignsearch.search.planning import plan_run
from alignsearch.search.records import ControlScore, records_table
from alignsearch.search.results import RunStatus
from alignsearch.search.run import (
    RunResult,
    check_runnable_controls,
    run_alignment,
    run_lock,
    untrained_copies,
)
from alignsearch.search.run_folder import ALIGNMENT, RESULTS
from alignsearch.search.scan_results import (
    ScanCell,
    ScanResult,
    describe,
    describe_control,
    first_per_cell,
    scan_cells,
)
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

Heatmap = Callable[..., Path]
"""Draws ``scan.png``: ``heatmap(result, path, steps, show=<iia or selectivity>)``
(:func:`alignsearch.report.plots.scan_heatmap`)."""

CSV, PNG, SUMMARY = "scan.csv", "scan.png", "scan.json"
CELLS, BEST = "cells", "best"
"""Subfolders of a scan: one folder per cell; the full alignment at the best cell."""
TEXT_POSITIONS = ("last", "-2", "-3")
"""The positions a scan of text pairs takes when none are given: the last three tokens of each prompt."""
TASK_POSITIONS = (ANY,)
"""... of task pairs: each pair's own positions (drawn among each sequence's valid ones)."""
CONTROLS_DIR, CONTROL_SCORES = "controls", "scan_control.json"
"""A trained control at a cell: ``cells/<cell>/controls/<name>/`` (its checkpoints, as a run's controls
keep them) and there ``scan_control.json``, its scores, written when it is done (what a scan run again
finds instead of training it again)."""
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
    alignment by the run core, the trained controls at the best cells by IIA, ``scan.csv``, ``scan.png``
    (drawn by ``heatmap``; None: no plot) and ``scan.json`` written, the best cells printed (``verbose``),
    and with ``scan.then_align`` the full alignment at the best cell in ``out_dir/best``. ``on_cell`` sees
    each cell as it finishes (before its trained controls)."""
    started = time.perf_counter()
    sites, positions = check_scan(models, alignment, run, scan, data)
    check_top_controls(models, scan)
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
    trained = tuple(scan.top_controls) if scan.trains_controls() else ()
    result = ScanResult(
        sites, positions, tuple(dict.fromkeys([*scan.controls, *trained])), [], out_dir,
        trained_controls=trained, controls_top=scan.controls_top if trained else 0,
    )  # fmt: skip
    runs: dict[tuple[str, str], RunResult] = {}
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
            runs[site, position] = dataclasses.replace(done, history=[], state={})  # the plan and results
            result.cells += cells
            atomic.write_text(out_dir / CSV, result.csv())
            for cell in cells:
                if verbose:
                    shown = describe(cell, scan.controls, len(cells) > 1)
                    print(f"[{n}/{len(grid)}] {shown}", flush=True)
                if on_cell is not None:
                    on_cell(cell)
        controls_started = time.perf_counter()
        if trained:
            train_top_controls(models, quiet, scan, result, runs, verbose)
        result.seconds = {
            "total": time.perf_counter() - started,
            "states": states.seconds if states is not None else 0.0,
            "steps": sum(c.seconds.get("steps", 0.0) for c in first_per_cell(result.cells)),
            "cells": sum(sum(c.seconds.values()) for c in first_per_cell(result.cells)),
            "controls": time.perf_counter() - controls_started,
        }
        if heatmap is not None:
            shown = scan.show or ("selectivity" if result.controlled() else "iia")
            heatmap(result, out_dir / PNG, scan.steps, show=shown)
        atomic.write_json(out_dir / SUMMARY, result.summary())
        if verbose:
            drawn = f", {out_dir / PNG}" if heatmap is not None else ""
            controlled = result.controlled_line()
            if controlled is not None:
                print(controlled, flush=True)
            ranked = "by selectivity, then the others by IIA" if result.controlled() else "by IIA"
            print(f"best cells, {ranked} ({out_dir / CSV}{drawn}):", flush=True)
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


def check_top_controls(models: Sequence[RunModel], scan: ScanSettings) -> None:
    """A ConfigError keyed ``scan.top_controls`` before any work for a trained control the models cannot
    have (``untrained`` where a model has no untrained form)."""
    if scan.trains_controls():
        check_runnable_controls(models, scan.top_controls, "scan.top_controls")


def control_cells(result: ScanResult, top: int) -> list[ScanCell]:
    """The cells the trained controls run at: the ``top`` best by IIA, one per site x position (a cell's
    variables share its run, and so its controls)."""
    return first_per_cell(result.ranked_by_iia())[:top]


def train_top_controls(
    models: Sequence[RunModel],
    hardware: HardwareSettings,
    scan: ScanSettings,
    result: ScanResult,
    runs: dict[tuple[str, str], RunResult],
    verbose: bool,
) -> None:
    """Train ``scan.top_controls`` (those not among ``scan.controls``, which every cell ran) at the
    ``scan.controls_top`` best cells by IIA, each with the cell's plan (its steps, pairs and seed) and
    models, by the run core's controls (:func:`~alignsearch.search.controls.run_controls`: the cell's own
    alignment is not trained again), in ``<cell>/controls/<name>/``; their scores go into the cells and
    ``scan.csv`` as each is done. A control whose ``scan_control.json`` belongs to the cell's run (its
    identity) is read, not trained again; an interrupted one resumes from its checkpoint."""
    missing = [c for c in scan.top_controls if c not in scan.controls]
    chosen = control_cells(result, scan.controls_top)
    total, n = len(chosen) * len(missing), 0
    modules = [m.model for m in models]

    for top in chosen:
        done = runs[top.site, top.position]
        seed = done.plan.seed  # the run's seed, as the run core hands its own controls

        cells = [c for c in result.cells if (c.site, c.position) == (top.site, top.position)]
        for name in missing:
            n += 1
            identity = {"control": name, "run": done.results.identity}
            saved = top.folder / CONTROLS_DIR / name / CONTROL_SCORES
            scores, seconds = read_control(saved, identity), None
            if scores is None:
                with run_lock(top.folder):  # the cell's folder, as its run holds it
                    scores = read_control(saved, identity)  # another process may have done it meanwhile
                    if scores is None:
                        start = time.perf_counter()
                        state = load_weights_only(top.folder / ALIGNMENT)["state_dict"]
                        scores = run_controls(
                            done.plan, modules, (name,), top.folder, seed=seed, hardware=hardware,
                            untrained=functools.partial(untrained_copies, models, seed), trained=state,
                            verbose=False,
                        )[name]  # fmt: skip
                        seconds = time.perf_counter() - start
                        atomic.write_json(
                            saved,
                            {
                                **identity,
                                "steps": scan.steps,
                                "seconds": round(seconds, 3),
                                "scores": {k: dataclasses.asdict(v) for k, v in scores.items()},
                            },
                        )
            for cell in cells:
                score = scores.get(cell.track) if cell.track is not None else None
                cell.controls[name] = score.iia if score is not None else None
            atomic.write_text(result.folder / CSV, result.csv())
            if verbose:
                line = describe_control(cells, name, seconds, scan.steps, len(cells) > 1)
                print(f"[control {n}/{total}] {line}", flush=True)


def read_control(path: Path, identity: dict) -> dict[str, ControlScore] | None:
    """The scores a trained control at a cell wrote (``scan_control.json``), if they belong to
    ``identity`` (the control and the cell's run); None otherwise, or where unreadable."""
    try:
        saved = json.loads(path.read_text())
        if {k: saved.get(k) for k in identity} != json.loads(json.dumps(identity)):
            return None
        names = {f.name for f in dataclasses.fields(ControlScore)}
        return {
            track: ControlScore(**{k: v for k, v in score.items() if k in names})
            for track, score in saved["scores"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
