"""The papers' claims, each with the threshold it is judged by (fixed here before any run), the grids
that measure it and its judge: the rows of those grids in, a :class:`Finding` (table, verdict, line) out.

A verdict that compares two conditions (the controls against the alignment, Up-Down against Up-Up, the
Transformer against the GRU, a task variant against MultiObject, GRU-Transformer against the same kind,
the CL loss against behavioural DAS) states the difference over the seeds both have, with its 95% interval
and the seeds paired, beside its threshold (:func:`~alignsearch.findings.stats.difference`). The verdict
itself is the rule fixed here, on the means; the interval is shown, not judged."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from alignsearch.controls import CONTROLS
from alignsearch.findings.stats import (
    Rows,
    by_seed,
    correlation_line,
    difference,
    is_count,
    mean,
    paired,
    run_of,
    summary,
    table,
    values,
    within_and_between,
)
from alignsearch.intervals import between_share
from alignsearch.report import pearson

CORRELATION = (-1.0, 1.0)
"""The range of a correlation, which its interval over seeds is clipped to (a share's is 0 to 1)."""
DIVERGENCE = (0.0, math.inf)
"""The range of a divergence (0 up)."""

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
MODEL_SHARE = 0.5
"""Divergence is a property of the model, not of the run, when at least this share of behavioural DAS's
divergence variance lies between the models rather than between runs of one model (their alignment
seeds: ICC(1), :func:`alignsearch.intervals.between_share`). Reported beside the claim's verdict, not part
of it, with the correlation of divergence with held-out IIA within models and between models and the CL
loss's effect in each model; fixed before the grid with several alignment seeds per model ran."""


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
    lines, ok, differences = [], [], []
    for model in ("gru", "lstm"):
        iia = mean(values(rows, model=model))
        controls = {c: values(rows, f"iia_control_{c}", model=model) for c in names}
        means = {k: statistics.fmean(v) for k, v in controls.items() if k in informative and v}
        best = max(means.values(), default=None)
        selectivity = None if iia is None or best is None else iia - best
        if selectivity is not None:
            best_name = max(means, key=lambda k: means[k])
            against = by_seed(rows, f"iia_control_{best_name}", model=model)
            differences.append(f"{model}: {difference(paired(by_seed(rows, model=model), against))}")
        lines.append([model, summary(values(rows, model=model)), *(summary(v) for v in controls.values()),
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
        f": {ok}"
        + (
            f" (IIA minus the best informative control, over seeds: {'; '.join(differences)})"
            if differences
            else ""
        ),
    )


def judge_upup(grids: dict[str, Rows]) -> Finding:
    rows = [r for r in grids["upup"] if r.get("direction", "0>0") == "0>0"]
    lines, ok, differences = [], [], []
    for model in sorted({r["model"] for r in rows}):
        updown = values(rows, model=model, causal_model="updown", variable="count")
        upup = {
            v: values(rows, model=model, causal_model="upup", variable=v)
            for v in ("demo_count", "resp_count")
        }
        lines.append([model, summary(updown), *(summary(v) for v in upup.values())])
        means = {v: statistics.fmean(xs) for v, xs in upup.items() if xs}
        best_upup = max(means.values(), default=None)
        if updown and best_upup is not None:
            best = max(means, key=lambda v: means[v])
            found = paired(
                by_seed(rows, model=model, causal_model="updown", variable="count"),
                by_seed(rows, model=model, causal_model="upup", variable=best),
            )
            differences.append(f"{model} ({best}): {difference(found)}")
        ok.append(
            bool(updown) and best_upup is not None and statistics.fmean(updown) >= best_upup + MODEL_MARGIN
        )
    return Finding(
        table(["model", "Up-Down count", "Up-Up demo_count", "Up-Up resp_count"], lines),
        all(ok) if ok else None,
        f"Up-Down's count IIA exceeds the better Up-Up counter by >= {MODEL_MARGIN}: {ok}"
        + (
            f" (Up-Down's minus the better Up-Up counter's, over seeds: {'; '.join(differences)})"
            if differences
            else ""
        ),
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
        [
            "Pearson r (all)",
            "-" if r_all is None else f"{r_all:.3f}",
            f"per seed: {summary(per_seed, bounds=CORRELATION)}",
        ]  # fmt: skip
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
    gap = ""
    if holds is not None:
        top = max(
            layers, key=lambda layer: mean(values(rows, layer=lambda v, layer=layer: str(v) == layer)) or 0
        )
        gru = by_seed([r for r in grids["count"] if is_count(r)], model="gru")
        found = paired(gru, by_seed(rows, layer=lambda v: str(v) == top))
        gap = f"the GRU's minus the Transformer's best layer's ({top}), over seeds: {difference(found)}; "
    return Finding(
        table(["site", "count IIA"], lines)
        + ["", "By the base position of the intervention:", ""]
        + position_table(rows, layers),
        holds,
        f"the 2-layer Transformer's best-layer count IIA is below the GRU's by >= {DIFFERENCE} ({gap}no"
        " Markovian count state at any layer; the IIA by position shows where it is lowest)",
    )


def position_table(rows: Rows, layers: list[str]) -> list[str]:
    """Count IIA by the base position of the intervention (a column per layer, mean over seeds with its
    95% interval)."""
    positions = sorted({int(p) for r in rows for p in (r.get("iia_by_position") or {})})
    cells = []
    for pos in positions:
        cell: list[object] = [pos]
        for layer in layers:
            found = [r["iia_by_position"][str(pos)] for r in rows
                     if str(r["layer"]) == layer and str(pos) in (r.get("iia_by_position") or {})]  # fmt: skip
            cell.append(summary(found))
        cells.append(cell)
    return table(["base position", *(f"transformer {layer}" for layer in layers)], cells) if cells else []


def judge_variants(grids: dict[str, Rows]) -> Finding:
    rows = [r for r in grids["variants"] if is_count(r)]
    tasks = ("multiobject", "sameobject", "multiobject_mod", "multiobject_round")
    lines = [[task, summary(values(rows, task=task))] for task in tasks]
    base = mean(values(rows, task="multiobject"))
    others = [statistics.fmean(values(rows, task=t)) for t in tasks[1:] if values(rows, task=t)]
    holds = None if base is None or not others else base >= COUNT_IIA and min(others) <= base - DIFFERENCE
    gaps = [
        f"{t}: {difference(paired(by_seed(rows, task='multiobject'), by_seed(rows, task=t)))}"
        for t in tasks[1:]
        if values(rows, task=t)
    ]
    return Finding(
        table(["task (GRU)", "count IIA"], lines),
        holds,
        f"MultiObject's count IIA >= {COUNT_IIA} and some variant's is lower by >= {DIFFERENCE}"
        + (
            f" (MultiObject's minus each variant's, over seeds: {'; '.join(gaps)})"
            if holds is not None
            else ""
        ),
    )


DIRECTIONS = ("0>0", "0>1", "1>0", "1>1")
"""MAS's four directions: GRU into itself, GRU into the partner, the partner into the GRU, the partner
into itself."""
SEED_SPREAD = 0.1
"""A direction whose IIA varies over seeds by more than this (standard deviation) is named on the page."""


def per_seed(rows: Rows, directions: Sequence[str]) -> list[float]:
    """For each seed, the mean IIA of ``directions``: one value per seed (n counts seeds, never
    directions)."""
    return list(seed_means(rows, directions).values())


def seed_means(rows: Rows, directions: Sequence[str]) -> dict[Any, float]:
    """:func:`per_seed` by seed: ``{seed: the mean IIA of directions}``, for the seeds that have each of
    them (in seed order; None: rows without one)."""
    seeds = sorted({r.get("seed") for r in rows}, key=lambda s: (s is None, s))  # None: rows without one
    out = {}
    for seed in seeds:
        iia = values(rows, seed=seed, direction=lambda d: d in directions)
        if len(iia) == len(directions):
            out[seed] = statistics.fmean(iia)
    return out


def judge_mas(grids: dict[str, Rows]) -> Finding:
    rows = grids["mas"]
    lines, cross, spread, crossing = [], {}, [], {}
    names = {}
    for partner in ("gru", "lstm", "transformer"):
        mine = [r for r in rows if r.get("partner_model") == partner and r.get("variable") == "count"]
        name = names[partner] = f"GRU-{partner.upper() if partner != 'transformer' else 'Transformer'}"
        by_direction = [values(mine, direction=d) for d in DIRECTIONS]
        crossing[partner] = seed_means(mine, ("0>1", "1>0"))
        cross[partner] = mean(list(crossing[partner].values()))
        spread += [f"{name} {d}" for d, xs in zip(DIRECTIONS, by_direction, strict=True)
                   if len(xs) > 1 and statistics.stdev(xs) > SEED_SPREAD]  # fmt: skip
        runs = [
            r for r in mine if r.get("direction") == "0>0"
        ]  # a run's similarity: once, whatever the direction
        lines.append([name, *map(summary, by_direction), summary(per_seed(mine, ("0>1", "1>0"))),
                      summary(values(runs, "cka_linear")),
                      summary(values(runs, "rsa_cos_spearman"), bounds=CORRELATION)])  # fmt: skip
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
    closer = "gru" if iia["gru"] <= iia["lstm"] else "lstm"  # the lower of the two, which the rule uses
    gap = difference(paired(crossing[closer], crossing["transformer"]))
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
        f"GRU-GRU and GRU-LSTM cross IIA >= {MAS_ALIGNED}; GRU-Transformer lower by >= {DIFFERENCE} (the lower"
        f" of the two, {names[closer]}, minus GRU-Transformer, cross IIA over seeds: {gap}); CKA rates"
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
    lines, means, forms = [], {}, {}
    for form, where in FORMS.items():
        mine = forms[form] = [
            r for r in rows if all(w(r.get(k)) if callable(w) else r.get(k) == w for k, w in where.items())
        ]
        means[form] = {key: mean(values(mine, key)) for key in ("iia", "divergence", "divergence_floor")}
        # over the models (their seeds): the runs of one model (alignment seeds) are its mean, not more seeds
        lines.append([form, summary(list(by_seed(mine).values())),
                      summary(list(by_seed(mine, "iia_heldout").values())),
                      summary(list(by_seed(mine, "divergence").values()), bounds=DIVERGENCE),
                      summary(list(by_seed(mine, "divergence_floor").values()), bounds=DIVERGENCE)])  # fmt: skip
    points = [(r["divergence"], r["iia_heldout"]) for r in rows if r.get("divergence") is not None
              and r.get("iia_heldout") is not None]  # fmt: skip
    r = pearson([p[0] for p in points], [p[1] for p in points])
    correlation = (
        "divergence against held-out IIA over the grid's runs: Pearson r = "
        + ("-" if r is None else f"{r:.2f}")
        + f" (n={len(points)})"
    )
    behavioural = {k: v for k, v in means["behavioural"].items() if v is not None}
    cl = {k: v for k, v in means["cl"].items() if v is not None}
    if len(behavioural) < len(means["behavioural"]) or len(cl) < len(means["cl"]):
        return Finding(table(DIVERGENCE_HEADER, lines), None, f"incomplete grid; {correlation}")
    diverges = behavioural["divergence"] >= ABOVE_FLOOR * behavioural["divergence_floor"]
    lowers = cl["divergence"] < behavioural["divergence"]
    keeps = behavioural["iia"] - cl["iia"] <= CL_IIA_TOLERANCE
    b_rows, cl_rows = forms["behavioural"], forms["cl"]
    floors = {seed: ABOVE_FLOOR * v for seed, v in by_seed(b_rows, "divergence_floor").items()}
    above = difference(paired(by_seed(b_rows, "divergence"), floors, bounds=None))
    lowered = difference(paired(by_seed(b_rows, "divergence"), by_seed(cl_rows, "divergence"), bounds=None))
    kept = difference(paired(by_seed(b_rows), by_seed(cl_rows)))
    return Finding(
        table(DIVERGENCE_HEADER, lines) + model_or_run(forms),
        diverges and lowers and keeps,
        f"behavioural DAS's divergence >= {ABOVE_FLOOR:g} x its floor: {diverges} (its divergence minus"
        f" {ABOVE_FLOOR:g} x its floor, over seeds: {above}); the CL loss lowers it: {lowers} (behavioural DAS's"
        f" divergence minus the CL loss's: {lowered}), at a validation IIA at most {CL_IIA_TOLERANCE} below:"
        f" {keeps} (behavioural DAS's IIA minus the CL loss's: {kept}); {correlation}; {model_or_run_line(forms)}",
    )


def model_or_run(forms: dict[str, Rows]) -> list[str]:
    """Claim 9 by model, where models have several runs (alignment seeds): per model (its seed), its runs,
    behavioural DAS's divergence and held-out IIA over them, and the CL loss's effect on the divergence
    (behavioural minus CL, paired by alignment seed, with its interval); nothing with one run per model."""
    b_rows, cl_rows = forms["behavioural"], forms["cl"]
    models = sorted({r.get("seed") for r in b_rows}, key=lambda s: (s is None, s))
    if not any(len([r for r in b_rows if r.get("seed") == m]) > 1 for m in models):
        return []
    lines = []
    for m in models:
        mine, theirs = [r for r in b_rows if r.get("seed") == m], [r for r in cl_rows if r.get("seed") == m]
        effect = paired(
            {run_of(r): r["divergence"] for r in mine if r.get("divergence") is not None},
            {run_of(r): r["divergence"] for r in theirs if r.get("divergence") is not None},
            bounds=None,
        )
        lines.append([m, len(mine), summary(values(mine, "divergence"), bounds=DIVERGENCE),
                      summary(values(mine, "iia_heldout")), difference(effect)])  # fmt: skip
    return ["", *table(BY_MODEL_HEADER, lines)]


BY_MODEL_HEADER = [
    "model seed",
    "runs",
    "divergence (behavioural)",
    "IIA held-out",
    "CL effect on divergence",
]


def model_or_run_line(forms: dict[str, Rows]) -> str:
    """Whether divergence belongs to the model or to the run: the share of behavioural DAS's divergence
    variance between models (ICC(1)) against :data:`MODEL_SHARE`, and divergence against held-out IIA
    within models (each (model, form)'s runs centred) and between models (their means over every form)."""
    rows = [r for form in forms.values() for r in form]
    behavioural = forms["behavioural"]
    per_model: dict[Any, list[float]] = {}
    for r in behavioural:
        if r.get("divergence") is not None:
            per_model.setdefault(r.get("seed"), []).append(r["divergence"])
    if not any(len(runs) > 1 for runs in per_model.values()):
        return (
            "one run per model: a model effect cannot be told from a run effect"
            " (several alignment seeds per model tell them apart: alignment_seed)"
        )
    share = between_share(list(per_model.values()))
    split = within_and_between(
        rows, "divergence", "iia_heldout", lambda r: (r.get("seed"), r.get("cl_weight"), r.get("cl_space"))
    )
    by_model = within_and_between(rows, "divergence", "iia_heldout", lambda r: r.get("seed"))
    shown = "-" if share is None else f"{share:.2f}"
    return (
        f"divergence belongs to the model (share of its variance between models >= {MODEL_SHARE}):"
        f" {share is not None and share >= MODEL_SHARE} ({shown} over {len(per_model)} models,"
        f" {sum(len(v) for v in per_model.values())} behavioural runs); divergence against held-out IIA"
        f" within models {correlation_line(split['within'], split['n_within'], split['within_groups'])},"
        f" between models {correlation_line(by_model['between'], by_model['groups'])}"
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
