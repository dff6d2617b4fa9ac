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
heatmap, sites x positions), ``scan.json`` (the settings, the cells and where the time went) and prints
its best cells; ``scan.then_align`` then runs the full alignment (the run's own alignment settings) at the
best cell, in ``out_dir/best/``.

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
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from alignsearch import atomic
from alignsearch.components import alignment_choices
from alignsearch.errors import ConfigError
from alignsearch.models import SequenceModel, hooks
from alignsearch.naming import with_digest
from alignsearch.search.pairs import BASE, CACHE_CHUNK, PairBatch, PrefixCache, Track, resumable
from alignsearch.search.planning import plan_run
from alignsearch.search.records import records_table
from alignsearch.search.results import RunStatus
from alignsearch.search.run import RunResult, run_alignment
from alignsearch.search.run_folder import RESULTS
from alignsearch.search.spec import RunData, RunModel
from alignsearch.search.text_data import CHUNK, TextPairSource, check_repositioned
from alignsearch.settings import (
    ANY,
    AlignmentSettings,
    HardwareSettings,
    Position,
    RunSettings,
    ScanSettings,
    position_of,
)
from alignsearch.tables import markdown_table, number
from alignsearch.tasks.counterfactual import check_position
from alignsearch.text.pairs import PairsData, TextPairs, reposition

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
    where = {"position": None if position == ANY else position}
    if site == "embedding" or layer:
        return dataclasses.replace(run, layer=int(layer.group(1)) if layer else site, site=None, **where)
    return dataclasses.replace(run, site=site, **where)


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


# -- the models' states at every scanned site, computed once ------------------------------------------------
class SiteStates:
    """The frozen models' states that the cells of a scan of text pairs need, computed once for all of
    them: per model, split, site and position, the source prompts' vectors at that position (float32, as
    :meth:`TextPairSource.tensors` gives them); per model, split (``train``, ``val``) and site the prefix
    cache can start from, the target states on the base sequences (as
    :func:`~alignsearch.search.pairs.add_base_states` gives them, into ``cache``; ``with_bases``:
    ``alignment.prefix_cache``).

    A request computes, in one pass over the split's pairs, everything :attr:`sites` and :attr:`positions`
    ask of that model and split (a site or position outside them is added first). ``seconds`` and
    ``passes`` say what it cost.
    """

    def __init__(
        self,
        data: PairsData,
        models: Sequence[SequenceModel],
        sites: Sequence[str],
        positions: Sequence[str],
        cache: PrefixCache,
        with_bases: bool = True,
    ) -> None:
        self.data, self.models, self.cache, self.with_bases = data, list(models), cache, with_bases
        self.sites, self.positions = list(sites), list(positions)
        self._moved: dict[str, tuple[PairsData, dict[str, Tensor]]] = {}
        self._sources: dict[tuple[int, str, str, str], Tensor] = {}
        self._bases: dict[tuple[int, str, str], Tensor] = {}
        self.seconds, self.passes = 0.0, 0

    def moved(self, position: Position | None) -> tuple[PairsData, dict[str, Tensor]]:
        """The pairs at ``position`` and the rows of :attr:`data` each split keeps (computed once)."""
        key = ANY if position is None else position.spec
        if key not in self._moved:
            self._moved[key] = reposition(self.data, position)
        return self._moved[key]

    def serves(self, models: Sequence[SequenceModel]) -> bool:
        """Whether these are the models the states are of (a control's untrained copies are not)."""
        return len(models) == len(self.models) and all(
            a is b for a, b in zip(models, self.models, strict=True)
        )

    def source_vectors(self, model: int, site: str, position: Position | None, split: str) -> Tensor:
        """(n, width) float32: ``model``'s vectors at ``site`` at each kept pair's source position."""
        spec = ANY if position is None else position.spec
        key = (model, site, spec, split)
        if key not in self._sources:
            self._add(site, spec)
            sites = [
                s
                for s in self.sites
                if any((model, s, p, split) not in self._sources for p in self.positions)
            ]
            self._compute_sources(model, split, sites)
        return self._sources[key]

    def base_states(self, model: int, site: str, position: Position | None, split: str) -> Tensor | None:
        """(n, L - 1, width): ``model``'s states at ``site`` on each kept pair's base sequence; None where
        the prefix cache is off, the model cannot start at the site, or for ``test`` (read once)."""
        if not self.with_bases or split == "test" or not resumable(self.models[model], site):
            return None
        if (model, site, split) not in self._bases:
            self._add(site, None)
            sites = [
                s
                for s in self.sites
                if resumable(self.models[model], s) and (model, s, split) not in self._bases
            ]
            self._compute_bases(model, split, sites)
        states = self._bases[model, site, split]
        rows = self.moved(position)[1][split]
        return states if len(rows) == len(states) else states[rows]

    def _add(self, site: str, spec: str | None) -> None:
        if site not in self.sites:
            self.sites.append(site)
        if spec is not None and spec not in self.positions:
            self.positions.append(spec)

    @torch.no_grad()
    def _compute_sources(self, model: int, split: str, sites: list[str]) -> None:
        start_time = time.perf_counter()
        pairs = self.data.splits[split]
        moved = {spec: self.moved(position_of(spec)) for spec in self.positions}
        pieces: dict[tuple[str, str], list[Tensor]] = {(s, p): [] for s in sites for p in self.positions}
        for start in range(0, len(pairs), CHUNK):
            acts = hooks.sites_activations(self.models[model], pairs.source_ids[start : start + CHUNK], sites)
            for spec, (data, kept) in moved.items():
                rows = kept[split]
                inside = (rows >= start) & (rows < start + CHUNK)
                local, at = rows[inside] - start, data.splits[split].source_pos[inside]
                for site in sites:
                    h = acts[site]
                    pieces[site, spec].append(h[local.to(h.device), at.to(h.device)].float().cpu())
        for (site, spec), parts in pieces.items():
            width = hooks.site_width(self.models[model], site) if not parts else parts[0].shape[-1]
            self._sources[model, site, spec, split] = torch.cat(parts) if parts else torch.zeros(0, width)
        self.passes += 1
        self.seconds += time.perf_counter() - start_time

    @torch.no_grad()
    def _compute_bases(self, model: int, split: str, sites: list[str]) -> None:
        start_time = time.perf_counter()
        ids = self.data.splits[split].ids[:, :-1]
        out: dict[str, Tensor] = {}
        for start in range(0, len(ids), CACHE_CHUNK):
            acts = hooks.sites_activations(self.models[model], ids[start : start + CACHE_CHUNK], sites)
            for site, h in acts.items():
                if site not in out:
                    out[site] = self.cache.allocate((len(ids), *h.shape[1:]), h.dtype)
                out[site][start : start + len(h)] = h.cpu()
        for site in sites:
            self._bases[model, site, split] = out[site]
        self.passes += 1
        self.seconds += time.perf_counter() - start_time


@dataclass
class ScanPairs(TextPairSource):
    """Text pairs whose cells share one :class:`SiteStates`: :meth:`at` repositions the pairs (no model
    runs), :meth:`build` hands each track the cached vectors and target states of its site and position.
    For models other than the states' (a control's untrained copies) it builds as :class:`TextPairSource`."""

    states: SiteStates | None = None
    position: Position | None = None

    def at(self, position: Position) -> ScanPairs:
        data, _ = self.states.moved(position)
        check_repositioned(data, position)
        return dataclasses.replace(self, data=data, position=position)

    def track_batch(
        self, track: Track, split: str, pairs: TextPairs, models: list[SequenceModel], sites: list[str]
    ) -> PairBatch:
        """The track's cached vectors and target states at its site and position (the shared states'
        models only; others, a control's untrained copies, compute theirs)."""
        if self.states is None or not self.states.serves(models):
            return super().track_batch(track, split, pairs, models, sites)
        batch = {
            "ids": pairs.ids,
            "task_mask": pairs.task_mask,
            "pos": pairs.base_pos,
            "src": self.states.source_vectors(track.source, sites[track.source], self.position, split),
        }
        base = self.states.base_states(track.target, sites[track.target], self.position, split)
        return batch if base is None else batch | {BASE: base}


# -- the cells -------------------------------------------------------------------------------------------------
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
                source.at(position)
            else:
                if alignment.stepwise:
                    raise ConfigError("position", spec, "any with alignment.stepwise=true")
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
) -> ScanResult:
    """Scan every site x position of ``scan`` (see the module docstring) in ``out_dir``: each cell a short
    alignment by the run core, ``scan.csv``, ``scan.png`` and ``scan.json`` written, the best cells printed
    (``verbose``), and with ``scan.then_align`` the full alignment at the best cell in ``out_dir/best``.
    ``on_cell`` sees each cell as it finishes."""
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
        states = SiteStates(
            data.source.data,
            [m.model for m in models],
            list(dict.fromkeys(run_site(run, s) for s, _ in pending)),
            list(dict.fromkeys(p for _, p in pending)),
            cache,
            with_bases=alignment.prefix_cache,
        )
        data = dataclasses.replace(
            data, source=ScanPairs(data.source.data, data.source.variable, states=states)
        )
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
            "steps": sum(c.seconds.get("steps", 0.0) for c in _first_per_cell(result.cells)),
            "cells": sum(sum(c.seconds.values()) for c in _first_per_cell(result.cells)),
        }
        write_heatmap(result, out_dir / PNG, scan.steps)
        atomic.write_json(out_dir / SUMMARY, result.summary())
        if verbose:
            print(f"best cells ({out_dir / CSV}, {out_dir / PNG}):", flush=True)
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
                done = RunStatus.ALREADY_DONE if aligned.status == RunStatus.ALREADY_DONE else "results"
                print(f"{done}: {out_dir / BEST / RESULTS}", flush=True)
                print(records_table(aligned.records), flush=True)
                print(f"{aligned.steps} steps (best at {aligned.results.best_step})", flush=True)
    finally:
        cache.close()
    return result


def run_site(run: RunSettings, site: str) -> str:
    """The site name a cell's run aligns (as :meth:`RunSettings.site_name` gives it)."""
    return cell_run(run, site, ANY).site_name()


def _first_per_cell(cells: list[ScanCell]) -> list[ScanCell]:
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
    variable = f" {cell.variable}" if variable else ""
    cost = (
        str(RunStatus.ALREADY_DONE)
        if cell.status == RunStatus.ALREADY_DONE
        else f"{cell.steps} steps, {sum(cell.seconds.values()):.1f} s"
    )
    return (
        f"{cell.site} @ {cell.position}{variable}: IIA {number(cell.iia)}"
        + (f" ({shown})" if shown else "")
        + f", {cost}"
    )


def write_heatmap(result: ScanResult, path: Path, steps: int) -> Path:
    """``scan.png``: validation IIA of every cell, sites (rows) x positions (columns), one panel per
    variable, each cell's value written in it and the best cell outlined (the report's conventions:
    off-screen, 0 to 1, viridis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

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
        for c in result.cells:
            if c.variable == variable:
                grid[rows.index(c.site)][cols.index(c.position)] = c.iia
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
        if best.variable == variable:
            i, j = rows.index(best.site), cols.index(best.position)
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
        ax.set_xticks(range(len(cols)), cols, fontsize=8)
        ax.set_yticks(range(len(rows)), rows, fontsize=8)
        ax.set_xlabel("position")
        title = f"{variable}: IIA (validation)" if len(variables) > 1 else "IIA (validation)"
        controls = [
            v for c in result.cells if c.variable == variable for v in c.controls.values() if v is not None
        ]
        control = f"\ncontrols: at most {max(controls):.2f}" if controls else ""
        ax.set_title(f"{title}, {steps} steps a cell{control}", fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), fraction=0.04, pad=0.02)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    atomic.write_bytes(path, buffer.getvalue())
    return path
