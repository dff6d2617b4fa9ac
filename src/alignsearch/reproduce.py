"""The papers' findings, reproduced by one command: run the grids behind each claim, then judge each claim.

    python -m alignsearch.reproduce --size small          # a laptop: about 15 minutes on 2 CPU cores
    python -m alignsearch.reproduce --size full hardware=slurm hydra.launcher.partition=gpu   # a cluster

Each grid is a preset of ``conf/experiment`` (:data:`GRIDS`: ``count`` is ``findings_count``, ``upup`` is
``upup_vs_updown``, ...; ``--only`` takes either name), run as a sweep of ``run_alignment`` into
``<out>/<grid>`` (default ``multirun/reproduce/<size>``); extra arguments are passed to every sweep (a
launcher, hardware). Running the command again resumes: finished jobs are reused, interrupted ones
resume. Then ``<out>/FINDINGS.md`` gets, for each claim, the measured numbers over seeds (mean, standard
deviation, n; a single run: its value and n=1), the controls where they apply, and a one-line verdict
against a threshold written down here, before any run (:data:`CLAIMS`); each grid folder also gets its
report and plots (:mod:`alignsearch.report`). ``--skip-runs`` only judges what the folders already hold.
``--publish docs/findings.md`` also copies the page there, its plots into ``docs/findings/<grid>/``,
keeping whatever the old page had below :data:`NOTES_MARKER` (notes written after reading the results).

Exit status: 0 with the findings written; 1 when a grid had failed jobs (the findings are written); 2
(one line) for bad input: an unknown grid, an ``--out`` that is a file or cannot be written,
``--skip-runs`` on grid folders without runs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from alignsearch import atomic
from alignsearch.controls import CONTROLS
from alignsearch.report import CannotWrite, NothingToReport, collect, pearson, report, write_failure
from alignsearch.tables import markdown_table

GRIDS = {
    "count": "findings_count",
    "upup": "upup_vs_updown",
    "training": "iia_over_training",
    "transformer": "transformer_layers",
    "variants": "findings_variants",
    "mas": "findings_mas",
    "n_units": "findings_n_units",
    "divergence": "findings_divergence",
}
"""Grid name (its folder under ``--out``) -> its ``conf/experiment`` preset; ``--only`` takes either."""
SIZES = {
    "small": "1 to 3 seeds, 300 alignment steps: 14 min on 2 CPU cores (docs/findings-small.md)",
    "full": "the papers' sizes, 3 to 5 seeds, 1000 alignment steps: 196 min on 2 CPU cores with"
    " hardware=local_parallel hydra.launcher.n_jobs=2 (docs/findings.md); on a cluster add a launcher"
    " (hardware=slurm hydra.launcher.partition=...)",
}
"""What each ``--size`` runs (the presets' ``sizes``), and how long it takes."""
EXIT_FAILED_JOBS, EXIT_USAGE = 1, 2
NOTES_MARKER = "<!-- notes written after the results: --publish keeps everything below this line -->"
"""Where a published page's generated text ends and its readers' notes begin."""

Rows = list[dict[str, Any]]
RUN_RECORD = "reproduce.json"
"""The command and wall time of every sitting that ran the grids into a folder (read by ``--skip-runs``):
``{"command": ..., "seconds": <all sittings>, "sittings": [{"started": <ISO time>, "seconds": ...}, ...]}``.
A grid interrupted and resumed (possibly across days) adds a sitting; its wall time is their sum."""

# -- thresholds, fixed before any run ---------------------------------------------------------------------------
COUNT_IIA = 0.9
"""A model carries the count when its mean validation IIA reaches this."""
SELECTIVITY = 0.5
"""... and it is no artifact when it beats the best informative control by this much."""
UNTRAINED_CEILING = 0.1
"""An untrained model's count IIA stays below this (it cannot do the task): so does every control that is
not informative (:attr:`alignsearch.controls.Control.informative`)."""
MODEL_MARGIN = 0.1
"""Up-Down explains a model better than Up-Up when its IIA is higher by this much."""
TRACKING_R = 0.7
"""IIA tracks task accuracy over training when their Pearson correlation reaches this."""
DIFFERENCE = 0.2
"""A model or task variant 'differs' when its count IIA is lower by this much."""
MAS_ALIGNED = 0.8
"""Two models align when their cross directions' mean IIA reaches this."""
FEW_UNITS = 4
"""'A few units': the count is low-dimensional when this many units reach ..."""
FEW_UNITS_SHARE = 0.9
"""... this share of the IIA of 32 units."""
ABOVE_FLOOR = 2.0
"""Behavioural DAS diverges when its mean divergence is at least this many times its noise floor ..."""
CL_IIA_TOLERANCE = 0.02
"""... and the counterfactual-latent loss (``form=cl``, the whole vector) mitigates it when it lowers the
mean divergence with a mean validation IIA at most this much below behavioural DAS's. The subspace form
(``cl_subspace``) and the correlation of divergence with held-out IIA are reported, not judged."""


@dataclass
class Finding:
    """A claim's measured table (markdown lines), its verdict (None: not measurable here) and a line."""

    table: list[str]
    holds: bool | None
    line: str
    plots: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Claim:
    title: str
    measured_as: str
    grids: tuple[str, ...]
    threshold: str
    judge: Callable[[dict[str, Rows]], Finding]


# -- statistics -------------------------------------------------------------------------------------------------
def values(rows: Rows, key: str = "iia", **where: Any) -> list[float]:
    """``key`` of the rows matching ``where`` (a value, or a callable that says whether it matches)."""
    out = []
    for row in rows:
        value = row.get(key)
        matches = all(w(row.get(k)) if callable(w) else row.get(k) == w for k, w in where.items())
        if matches and isinstance(value, int | float) and not isinstance(value, bool):
            out.append(float(value))
    return out


def mean(xs: Sequence[float]) -> float | None:
    return statistics.fmean(xs) if xs else None


def summary(xs: Sequence[float]) -> str:
    """``0.953 ± 0.021 (n=5)``; a single value alone (no spread to show); ``-`` without values.

    >>> summary([0.9, 1.0]), summary([0.9])
    ('0.950 ± 0.071 (n=2)', '0.900 (n=1)')
    """
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{xs[0]:.3f} (n=1)"
    return f"{statistics.fmean(xs):.3f} ± {statistics.stdev(xs):.3f} (n={len(xs)})"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """The lines of a findings table (:func:`alignsearch.tables.markdown_table`)."""
    return markdown_table(header, rows, pad=False).split("\n")


def verdict(holds: bool | None) -> str:
    return {True: "supported", False: "not supported", None: "not measured"}[holds]


def is_count(row: dict) -> bool:
    return row.get("variable") == "count" and row.get("direction", "0>0") == "0>0"


# -- the claims ----------------------------------------------------------------------------------------------
def judge_count(grids: dict[str, Rows]) -> Finding:
    rows = [r for r in grids["count"] if is_count(r)]
    lines, ok = [], []
    for model in ("gru", "lstm"):
        iia = values(rows, model=model)
        lines.append([model, summary(iia), summary(values(rows, "iia_heldout", model=model)),
                      summary(values(rows, "iia_test", model=model))])  # fmt: skip
        ok.append(bool(iia) and statistics.fmean(iia) >= COUNT_IIA)
    holds = all(ok) if lines and any(values(rows)) else None
    return Finding(
        table(["model", "IIA val", "IIA held-out counts", "IIA test"], lines),
        holds,
        f"mean validation IIA of count (16 units, layer 0) >= {COUNT_IIA} for GRU and LSTM: {ok}",
    )


def judge_controls(grids: dict[str, Rows]) -> Finding:
    """Selectivity over the registered controls (:data:`alignsearch.controls.CONTROLS`): IIA minus the best
    informative one; those that are not informative (near 0 by construction: ``untrained``) stay below
    :data:`UNTRAINED_CEILING`."""
    rows = [r for r in grids["count"] if is_count(r)]
    names = list(CONTROLS)
    informative = [c for c in names if CONTROLS[c].informative]
    trivial = [c for c in names if not CONTROLS[c].informative]
    lines, ok = [], []
    for model in ("gru", "lstm"):
        iia = mean(values(rows, model=model))
        controls = {c: values(rows, f"iia_control_{c}", model=model) for c in names}
        best = max((statistics.fmean(v) for k, v in controls.items() if k in informative and v), default=None)
        selectivity = None if iia is None or best is None else iia - best
        lines.append([model, f"{iia:.3f}" if iia is not None else "-", *(summary(v) for v in controls.values()),
                      "-" if selectivity is None else f"{selectivity:.3f}"])  # fmt: skip
        low = all((mean(controls[c]) or 0) <= UNTRAINED_CEILING for c in trivial)
        ok.append(selectivity is not None and selectivity >= SELECTIVITY and low)
    shown = [c.replace("_", "-") for c in informative]
    return Finding(
        table(["model", "IIA val", *(c.replace("_", " ") for c in names), "selectivity"], lines),
        all(ok) if rows else None,
        f"IIA minus the best of {' and '.join(shown)} >= {SELECTIVITY}"
        + "".join(f", {c} < {UNTRAINED_CEILING}" for c in trivial)
        + f" ({', '.join(trivial) or 'none'}: near 0 by construction; the informative controls: {', '.join(shown)})"
        f": {ok}",
    )


def judge_upup(grids: dict[str, Rows]) -> Finding:
    rows = [r for r in grids["upup"] if r.get("direction", "0>0") == "0>0"]
    lines, ok = [], []
    for model in sorted({r["model"] for r in rows}):
        updown = values(rows, model=model, causal_model="updown", variable="count")
        upup = {
            v: values(rows, model=model, causal_model="upup", variable=v)
            for v in ("demo_count", "resp_count")
        }
        lines.append([model, summary(updown), *(summary(v) for v in upup.values())])
        best_upup = max((statistics.fmean(v) for v in upup.values() if v), default=None)
        ok.append(
            bool(updown) and best_upup is not None and statistics.fmean(updown) >= best_upup + MODEL_MARGIN
        )
    return Finding(
        table(["model", "Up-Down count", "Up-Up demo_count", "Up-Up resp_count"], lines),
        all(ok) if ok else None,
        f"Up-Down's count IIA exceeds the better Up-Up counter by >= {MODEL_MARGIN}: {ok}",
    )


def judge_training(grids: dict[str, Rows]) -> Finding:
    rows = [r for r in grids["training"] if is_count(r) and r.get("task_acc") is not None]
    pairs = [(r["iia"], r["task_acc"]) for r in rows]
    r_all = pearson([p[0] for p in pairs], [p[1] for p in pairs]) if len(pairs) > 2 else None
    per_seed = []
    for seed in sorted({r["seed"] for r in rows}):
        mine = [r for r in rows if r["seed"] == seed]
        if len(mine) > 2:
            r_seed = pearson([r["iia"] for r in mine], [r["task_acc"] for r in mine])
            if r_seed is not None:
                per_seed.append(r_seed)
    by_step = sorted({r["snapshot"] for r in rows})
    lines = [
        [step, summary(values(rows, snapshot=step)), summary(values(rows, "task_acc", snapshot=step))]
        for step in by_step
    ]
    lines.append(
        ["Pearson r (all)", "-" if r_all is None else f"{r_all:.3f}", f"per seed: {summary(per_seed)}"]
    )
    return Finding(
        table(["snapshot (training step)", "count IIA", "task accuracy"], lines),
        None if r_all is None else r_all >= TRACKING_R,
        f"Pearson correlation of IIA and task accuracy over snapshots >= {TRACKING_R}",
    )


def judge_transformer(grids: dict[str, Rows]) -> Finding:
    rows = [r for r in grids["transformer"] if is_count(r)]
    layers = sorted({str(r["layer"]) for r in rows}, key=lambda s: (s != "embedding", s))
    lines = [
        [f"transformer {layer}", summary(values(rows, layer=lambda v, layer=layer: str(v) == layer))]
        for layer in layers
    ]
    rnn = values([r for r in grids["count"] if is_count(r)], model="gru")
    lines.append(["GRU layer 0 (count grid)", summary(rnn)])
    best = max(
        (mean(values(rows, layer=lambda v, layer=layer: str(v) == layer)) or 0 for layer in layers),
        default=None,
    )
    holds = None if best is None or not rnn else best <= statistics.fmean(rnn) - DIFFERENCE
    return Finding(
        table(["site", "count IIA"], lines)
        + ["", "By the base position of the intervention:", ""]
        + position_table(rows, layers),
        holds,
        f"the 2-layer Transformer's best-layer count IIA is below the GRU's by >= {DIFFERENCE} (no Markovian"
        " count state at any layer; the IIA by position shows where it is lowest)",
    )


def position_table(rows: Rows, layers: list[str]) -> list[str]:
    """Count IIA by the base position of the intervention (a column per layer, mean over seeds)."""
    positions = sorted({int(p) for r in rows for p in (r.get("iia_by_position") or {})})
    cells = []
    for pos in positions:
        cell: list[object] = [pos]
        for layer in layers:
            found = [r["iia_by_position"][str(pos)] for r in rows
                     if str(r["layer"]) == layer and str(pos) in (r.get("iia_by_position") or {})]  # fmt: skip
            cell.append(f"{mean(found):.3f}" if found else "-")
        cells.append(cell)
    return table(["base position", *(f"transformer {layer}" for layer in layers)], cells) if cells else []


def judge_variants(grids: dict[str, Rows]) -> Finding:
    rows = [r for r in grids["variants"] if is_count(r)]
    tasks = ("multiobject", "sameobject", "multiobject_mod", "multiobject_round")
    lines = [[task, summary(values(rows, task=task))] for task in tasks]
    base = mean(values(rows, task="multiobject"))
    others = [statistics.fmean(values(rows, task=t)) for t in tasks[1:] if values(rows, task=t)]
    holds = None if base is None or not others else base >= COUNT_IIA and min(others) <= base - DIFFERENCE
    return Finding(
        table(["task (GRU)", "count IIA"], lines),
        holds,
        f"MultiObject's count IIA >= {COUNT_IIA} and some variant's is lower by >= {DIFFERENCE}",
    )


DIRECTIONS = ("0>0", "0>1", "1>0", "1>1")
"""MAS's four directions: GRU into itself, GRU into the partner, the partner into the GRU, the partner
into itself."""
SEED_SPREAD = 0.1
"""A direction whose IIA varies over seeds by more than this (standard deviation) is named on the page."""


def per_seed(rows: Rows, directions: Sequence[str]) -> list[float]:
    """For each seed, the mean IIA of ``directions``: one value per seed (n counts seeds, never
    directions)."""
    seeds = sorted({r.get("seed") for r in rows}, key=lambda s: (s is None, s))  # None: rows without one
    out = []
    for seed in seeds:
        iia = values(rows, seed=seed, direction=lambda d: d in directions)
        out += [statistics.fmean(iia)] if len(iia) == len(directions) else []
    return out


def judge_mas(grids: dict[str, Rows]) -> Finding:
    rows = grids["mas"]
    lines, cross, spread = [], {}, []
    for partner in ("gru", "lstm", "transformer"):
        mine = [r for r in rows if r.get("partner_model") == partner and r.get("variable") == "count"]
        name = f"GRU-{partner.upper() if partner != 'transformer' else 'Transformer'}"
        by_direction = [values(mine, direction=d) for d in DIRECTIONS]
        cross[partner] = mean(per_seed(mine, ("0>1", "1>0")))
        spread += [f"{name} {d}" for d, xs in zip(DIRECTIONS, by_direction, strict=True)
                   if len(xs) > 1 and statistics.stdev(xs) > SEED_SPREAD]  # fmt: skip
        cka, rsa = mean(values(mine, "cka_linear")), mean(values(mine, "rsa_cos_spearman"))
        lines.append([name, *map(summary, by_direction), summary(per_seed(mine, ("0>1", "1>0"))),
                      "-" if cka is None else f"{cka:.3f}", "-" if rsa is None else f"{rsa:.3f}"])  # fmt: skip
    header = ["models", *(f"IIA {d}" for d in DIRECTIONS), "cross (mean of 0>1, 1>0 per seed)", "CKA (linear)",
              "RSA (cos, Spearman)"]  # fmt: skip
    spread_line = (
        f"; directions whose IIA spreads over seeds by more than {SEED_SPREAD} (sd): {', '.join(spread)}"
        if spread
        else ""
    )
    iia = {p: v for p, v in cross.items() if v is not None}
    if len(iia) < len(cross):
        return Finding(table(header, lines), None, "incomplete grid" + spread_line)
    same_kind = min(iia["gru"], iia["lstm"])
    ckas = {p: mean(values([r for r in rows if r.get("partner_model") == p], "cka_linear")) for p in iia}
    cka_transformer, cka_gru = ckas["transformer"], ckas["gru"]
    over = (
        cka_transformer is not None and cka_gru and iia["gru"]
        and cka_transformer / cka_gru > iia["transformer"] / iia["gru"]
    )  # fmt: skip
    holds = same_kind >= MAS_ALIGNED and iia["transformer"] <= same_kind - DIFFERENCE and bool(over)
    return Finding(
        table(header, lines),
        holds,
        f"GRU-GRU and GRU-LSTM cross IIA >= {MAS_ALIGNED}; GRU-Transformer lower by >= {DIFFERENCE}; CKA rates"
        f" GRU-Transformer closer to GRU-GRU than MAS does{spread_line}",
    )


def judge_n_units(grids: dict[str, Rows]) -> Finding:
    rows = [r for r in grids["n_units"] if is_count(r)]
    sizes = sorted({int(r["n_units"]) for r in rows})
    models = [m for m in ("gru", "lstm") if any(r.get("model", "gru") == m for r in rows)]
    lines = [[n, *(summary(values(rows, n_units=n, model=m)) for m in models)] for n in sizes]
    gru = [r for r in rows if r.get("model", "gru") == "gru"]  # the verdict is the GRU's, as first fixed
    full = mean(values(gru, n_units=max(sizes))) if sizes else None
    few = mean(values(gru, n_units=FEW_UNITS))
    holds = None if full is None or few is None else few >= FEW_UNITS_SHARE * full
    lstm = [r for r in rows if r.get("model") == "lstm"]
    lstm_few, lstm_full = (
        mean(values(lstm, n_units=FEW_UNITS)),
        mean(values(lstm, n_units=max(sizes or [32]))),
    )
    beside = (
        f"; the LSTM's {FEW_UNITS} units reach {lstm_few / lstm_full:.0%} of its {max(sizes)}"
        if lstm_few is not None and lstm_full
        else ""
    )
    return Finding(
        table(["n_units", *(f"count IIA ({m.upper()})" for m in models)], lines),
        holds,
        f"{FEW_UNITS} units reach >= {FEW_UNITS_SHARE:.0%} of the IIA of {max(sizes) if sizes else 32} units"
        f" (GRU){beside}",
    )


FORMS: dict[str, dict[str, Any]] = {
    "behavioural": {"cl_weight": 0.0},
    "cl": {"cl_weight": lambda w: w > 0, "cl_space": "full"},
    "cl_subspace": {"cl_weight": lambda w: w > 0, "cl_space": "subspace"},
}
"""The forms ``findings_divergence`` compares, told apart by their recorded settings."""


def judge_divergence(grids: dict[str, Rows]) -> Finding:
    rows = [r for r in grids["divergence"] if is_count(r)]
    lines, means = [], {}
    for form, where in FORMS.items():
        mine = [
            r for r in rows if all(w(r.get(k)) if callable(w) else r.get(k) == w for k, w in where.items())
        ]
        means[form] = {key: mean(values(mine, key)) for key in ("iia", "divergence", "divergence_floor")}
        lines.append([form, summary(values(mine)), summary(values(mine, "iia_heldout")),
                      summary(values(mine, "divergence")), summary(values(mine, "divergence_floor"))])  # fmt: skip
    paired = [(r["divergence"], r["iia_heldout"]) for r in rows if r.get("divergence") is not None
              and r.get("iia_heldout") is not None]  # fmt: skip
    r = pearson([p[0] for p in paired], [p[1] for p in paired])
    correlation = (
        "divergence against held-out IIA over the grid's runs: Pearson r = "
        + ("-" if r is None else f"{r:.2f}")
        + f" (n={len(paired)})"
    )
    behavioural = {k: v for k, v in means["behavioural"].items() if v is not None}
    cl = {k: v for k, v in means["cl"].items() if v is not None}
    if len(behavioural) < len(means["behavioural"]) or len(cl) < len(means["cl"]):
        return Finding(table(DIVERGENCE_HEADER, lines), None, f"incomplete grid; {correlation}")
    diverges = behavioural["divergence"] >= ABOVE_FLOOR * behavioural["divergence_floor"]
    lowers = cl["divergence"] < behavioural["divergence"]
    keeps = behavioural["iia"] - cl["iia"] <= CL_IIA_TOLERANCE
    return Finding(
        table(DIVERGENCE_HEADER, lines),
        diverges and lowers and keeps,
        f"behavioural DAS's divergence >= {ABOVE_FLOOR:g} x its floor: {diverges}; the CL loss lowers it: "
        f"{lowers}, at a validation IIA at most {CL_IIA_TOLERANCE} below: {keeps}; {correlation}",
    )


DIVERGENCE_HEADER = ["form", "IIA val", "IIA held-out counts", "divergence", "noise floor"]

CLAIMS = (
    Claim("GRUs and LSTMs trained on MultiObject carry an Up-Down count that behaves like a symbolic variable",
          "DAS count IIA at 16 units over seeds: validation, held-out counts, test", ("count",),
          f"mean IIA >= {COUNT_IIA}", judge_count),
    Claim("It is not an artifact of the method", "the same alignment on untrained models, random subspaces and"
          " shuffled pairs (alignment.controls)", ("count",), f"selectivity >= {SELECTIVITY}", judge_controls),
    Claim("Up-Down explains the recurrent models better than Up-Up", "the two causal models side by side",
          ("upup",), f"margin >= {MODEL_MARGIN}", judge_upup),
    Claim("IIA tracks task performance over training", "IIA and task accuracy over training snapshots",
          ("training",), f"Pearson r >= {TRACKING_R}", judge_training),
    Claim("2-layer Transformers solve the task differently (anti-Markovian)", "count IIA by layer beside the"
          " GRU's", ("transformer", "count"), f"lower by >= {DIFFERENCE}", judge_transformer),
    Claim("Symbol-like variables do not form for every task variant", "SameObject, Mod and Round beside"
          " MultiObject", ("variants",), f"a variant lower by >= {DIFFERENCE}", judge_variants),
    Claim("MAS: models of one kind align in all directions, GRU-Transformer poorly; RSA/CKA overestimate",
          "the direction table with CKA and RSA", ("mas",), f"cross IIA >= {MAS_ALIGNED}", judge_mas),
    Claim("Low-dimensional variables: a few units carry the count", "IIA against n_units 1-32", ("n_units",),
          f"{FEW_UNITS} units >= {FEW_UNITS_SHARE:.0%} of 32", judge_n_units),
    Claim("DAS pushes the GRU off its natural states; the counterfactual-latent loss keeps it closer at the"
          " same IIA", "divergence at the site (EMD per feature over the natural spread) and its noise floor,"
          " behavioural DAS beside the CL loss (alignment.cl_weight)", ("divergence",),
          f"{ABOVE_FLOOR:g} x floor; IIA within {CL_IIA_TOLERANCE}", judge_divergence),
)  # fmt: skip


# -- running and writing -----------------------------------------------------------------------------------------
def run_grid(grid: str, size: str, out: Path, extra: Sequence[str]) -> int:
    """The grid's sweep, resumable in ``out/<grid>``; returns its exit status (1: some job failed)."""
    command = [
        sys.executable, "-m", "alignsearch.cli.run_alignment", "-m", f"+experiment={GRIDS[grid]}",
        f"size={size}", f"hydra.sweep.dir={out / grid}", "hardware.progress_bar=false", *extra,
    ]  # fmt: skip
    print(f"reproduce: {grid} ({GRIDS[grid]}, size={size})", flush=True)
    return subprocess.run(command).returncode


def grid_rows(out: Path, grid: str) -> Rows:
    folder = out / grid
    if not folder.is_dir():
        return []
    rows = collect(folder).rows
    with contextlib.suppress(NothingToReport):
        report(folder)  # report.md, report.csv and plots of the grid
    return rows


def findings(out: Path, size: str, seconds: float | None, command: str | None, sittings: int = 1) -> str:
    """The text of ``FINDINGS.md`` for the grid folders under ``out``. ``command`` ran the grids (in
    ``seconds`` of wall time over ``sittings``, an interrupted grid resuming in the next); None: no record
    of it (the folders were filled otherwise), and the header says so."""
    grids = {grid: grid_rows(out, grid) for grid in GRIDS}
    machine = (
        f"{platform.machine()} ({platform.system()}, Python {platform.python_version()}, {_cpus()} CPU cores)"
    )
    if command is None:
        produced = (
            f"Judged on {datetime.date.today().isoformat()}, {machine}, from the runs the grid folders held"
            " (`--skip-runs`; no record of the command that ran them)."
        )
    else:
        produced = f"Produced by `{command}` on {datetime.date.today().isoformat()}, {machine}" + (
            f", in {seconds / 60:.0f} min of wall time"
            + (f" over {sittings} sittings (it resumed where each stopped)." if sittings > 1 else ".")
            if seconds is not None
            else "."
        )
    lines = [
        "# Findings",
        "",
        produced,
        "Each number is a mean ± standard deviation over seeds (n). Verdicts compare them with thresholds"
        " fixed in `alignsearch/reproduce.py` before any run; at `--size small` there are few seeds and short"
        " trainings, so a verdict is evidence at that size, not a replication.",
        "",
        "| claim | measured as | verdict |",
        "|---|---|---|",
    ]
    judged = []
    for i, claim in enumerate(CLAIMS, 1):
        try:
            finding = claim.judge(grids)
        except (KeyError, ValueError, TypeError, ZeroDivisionError) as e:
            finding = Finding([], None, f"could not be judged: {type(e).__name__}: {e}")
        judged.append(finding)
        lines.append(f"| {i}. {claim.title} | {claim.measured_as} | {verdict(finding.holds)} |")
    for i, (claim, finding) in enumerate(zip(CLAIMS, judged, strict=True), 1):
        lines += ["", f"## {i}. {claim.title}", "", f"Measured as: {claim.measured_as} (grids: "
                  + ", ".join(f"`{g}` = `+experiment={GRIDS[g]}`" for g in claim.grids) + ").", ""]  # fmt: skip
        lines += finding.table + ["", f"**{verdict(finding.holds)}**: {finding.line}."]
        for grid in claim.grids:
            plots = sorted((out / grid / "plots").glob("*.png")) if (out / grid / "plots").is_dir() else []
            lines += [f"![{grid}: {p.stem}]({grid}/plots/{p.name})" for p in plots if p.stem != "iia_curves"]
    return "\n".join(lines) + "\n"


def publish(out: Path, page: Path) -> None:
    """Copy ``out``'s ``FINDINGS.md`` to ``page`` and its plots (``<grid>/plots/<name>.png``) next to it
    as ``<page stem>/<grid>/<name>.png``, the links rewritten to match; the old page's notes (from
    :data:`NOTES_MARKER` on) are kept below the new text. The numbers behind the page go beside the
    plots: each grid's ``report.csv`` (its table: a row per setting and direction, means and standard
    deviations over seeds) and :data:`RUN_RECORD`.

    A link ``![mas: mas_directions](mas/plots/mas_directions.png)`` on ``docs/findings.md`` becomes
    ``![mas: mas_directions](findings/mas/mas_directions.png)``."""
    text = (out / "FINDINGS.md").read_text()
    for grid in GRIDS:
        for plot in sorted((out / grid / "plots").glob("*.png")) if (out / grid / "plots").is_dir() else []:
            link = f"{page.stem}/{grid}/{plot.name}"
            if f"({grid}/plots/{plot.name})" in text:
                atomic.write_bytes(page.parent / link, plot.read_bytes())
                text = text.replace(f"({grid}/plots/{plot.name})", f"({link})")
        if (out / grid / "report.csv").is_file():
            atomic.write_bytes(
                page.parent / page.stem / grid / "report.csv", (out / grid / "report.csv").read_bytes()
            )
    if (out / RUN_RECORD).is_file():
        atomic.write_bytes(page.parent / page.stem / RUN_RECORD, (out / RUN_RECORD).read_bytes())
    old = page.read_text() if page.is_file() else ""
    if NOTES_MARKER in old:
        text += "\n" + old[old.index(NOTES_MARKER) :]
    elif old:
        print(f"replacing {page}: it had no notes marker, so none of its text is kept", flush=True)
    atomic.write_text(page, text)


def read_record(out: Path) -> dict[str, Any]:
    """The folder's :data:`RUN_RECORD` (``{}`` where there is none); a record of one sitting written
    before ``sittings`` existed reads as that sitting."""
    path = out / RUN_RECORD
    run = json.loads(path.read_text()) if path.is_file() else {}
    if "seconds" in run and "sittings" not in run:
        run["sittings"] = [{"started": None, "seconds": run["seconds"]}]
    return run


def add_sitting(run: dict[str, Any], command: str, started: str, seconds: float) -> dict[str, Any]:
    """``run`` with one more sitting of ``command``: a sitting of another command starts a new record
    (the folder was refilled otherwise), one of the same command adds its wall time.

    >>> run = add_sitting({}, "python -m alignsearch.reproduce --size full", "2026-12-05T04:00:07", 8000.0)
    >>> add_sitting(run, run["command"], "2026-12-06T06:43:00", 6000.0)["seconds"]
    14000.0
    """
    sittings = list(run.get("sittings", [])) if run.get("command") == command else []
    sittings.append({"started": started, "seconds": seconds})
    return {"command": command, "seconds": sum(s["seconds"] for s in sittings), "sittings": sittings}


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def grid_names() -> str:
    """Every grid with its preset: ``count (findings_count), upup (upup_vs_updown), ...``."""
    return ", ".join(f"{grid} ({preset})" for grid, preset in GRIDS.items())


def selected_grids(only: str | None) -> list[str]:
    """The grids ``--only`` names, each by its grid name or its preset (``count`` or ``findings_count``),
    in the order given; every grid without ``--only``. ValueError names the first unknown one.

    >>> selected_grids("findings_count,upup")
    ['count', 'upup']
    """
    if not only:
        return list(GRIDS)
    by_preset = {preset: grid for grid, preset in GRIDS.items()}
    grids: list[str] = []
    for name in only.split(","):
        grid = name if name in GRIDS else by_preset.get(name)
        if grid is None:
            raise ValueError(f"--only={only}: unknown grid {name}; expected some of {grid_names()}")
        grids += [grid] if grid not in grids else []
    return grids


def has_runs(out: Path) -> bool:
    """Whether a grid folder under ``out`` holds a run (a ``results.json``)."""
    return any(next((out / grid).rglob("results.json"), None) for grid in GRIDS if (out / grid).is_dir())


def file_in_the_way(out: Path) -> Path | None:
    """``out`` or the nearest of its parents that exists, where that is a file rather than a folder."""
    for place in (out, *out.parents):
        if place.exists():
            return None if place.is_dir() else place
    return None


def fail(message: str) -> NoReturn:
    """Bad input: one line, exit status 2."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USAGE)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m alignsearch.reproduce",
        description=__doc__.split("\n")[0],
        epilog="Other arguments (Hydra overrides: a launcher, hardware) go to every grid's sweep.",
    )
    parser.add_argument(
        "--size",
        choices=tuple(SIZES),
        default="small",
        help="; ".join(f"{size}: {what}" for size, what in SIZES.items()) + " (default: small)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="the folder of every grid and FINDINGS.md (default: multirun/reproduce/<size>)",
    )
    parser.add_argument(
        "--only",
        help="comma-separated grids to run, by grid or preset name (default: all): " + grid_names(),
    )
    parser.add_argument(
        "--skip-runs", action="store_true", help="run nothing: judge what the grid folders already hold"
    )
    parser.add_argument(
        "--publish",
        type=Path,
        metavar="PAGE",
        help="also copy FINDINGS.md to PAGE (e.g. docs/findings.md) and its plots beside it, keeping the"
        " old page's notes below its notes marker",
    )
    args, extra = parser.parse_known_args(argv)
    out = (args.out or Path("multirun") / "reproduce" / args.size).resolve()
    try:
        grids = selected_grids(args.only)
    except ValueError as e:
        fail(str(e))
    blocker = file_in_the_way(out)
    if blocker is not None:
        fail(f"--out {out}: {blocker} is a file, not a folder")
    if args.skip_runs and not has_runs(out):
        fail(
            f"--skip-runs: no runs to judge in {out} (no results.json in its grid folders); run the grids"
            f" first: python -m alignsearch.reproduce --size {args.size}"
        )
    start, started = time.perf_counter(), datetime.datetime.now().isoformat(timespec="seconds")
    failed = []
    if not args.skip_runs:
        for grid in grids:
            if run_grid(grid, args.size, out, extra) != 0:
                failed.append(grid)
    command = " ".join(["python -m alignsearch.reproduce", f"--size {args.size}", *extra])
    try:
        if args.skip_runs:
            run = read_record(out)
        else:  # what this run took, kept for a later --skip-runs
            run = add_sitting(read_record(out), command, started, time.perf_counter() - start)
            atomic.write_json(out / RUN_RECORD, run)
        text = findings(out, args.size, run.get("seconds"), run.get("command"), len(run.get("sittings", [])))
        atomic.write_text(out / "FINDINGS.md", text)
        if args.publish is not None:
            publish(out, args.publish)
    except CannotWrite as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot write the findings to {out}: {write_failure(out, e)}")
    print(
        f"findings: {out / 'FINDINGS.md'}"
        + (f" (grids with failed jobs: {', '.join(failed)})" if failed else "")
    )
    sys.exit(EXIT_FAILED_JOBS if failed else 0)


if __name__ == "__main__":
    main()
