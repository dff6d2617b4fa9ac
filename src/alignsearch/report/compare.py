"""Tests of differences in the report: two conditions of one setting compared over the seeds both have
(``python -m alignsearch.report <folder> --compare model=gru,lstm``).

Each run of the first condition is paired with the run of the second that has the same seed and every
other setting alike (a setting that has one value in each condition's runs, different between the two,
goes with the condition: it is left out of the pairing and named, as it differs between the two with the
condition itself); a run without a partner is counted, not used. For each configuration and record
(direction, variable) the report gives, per measure, the mean over the paired seeds of the difference
``a - b``, its 95% interval and the two-sided p-value of the paired t-test
(:func:`alignsearch.intervals.paired_difference`), and the number of seeds paired.

One seed gives, for the validation IIA, the paired bootstrap over its pairs
(:func:`alignsearch.intervals.paired_bootstrap`): both runs' hits pair by pair (each record's
``pair_hits``, schema 6), where both were evaluated on the same pairs (the same ``pairs_sha256``); every
other measure of one seed, and runs without their hits, give the difference alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from alignsearch.intervals import PairedDifference, paired_bootstrap, paired_difference
from alignsearch.report.aggregate import SEEDS, natural_order
from alignsearch.report.measures import ROW_KEYS, measure_range, title
from alignsearch.report.render import to_csv
from alignsearch.tables import MISSING, markdown_table, number

COMPARISON_CSV = "comparison.csv"
"""The comparison's numbers, unrounded, beside ``report.csv``."""
STATS = ("diff", "low", "high", "p", "n")
"""Per measure, the comparison's columns: ``<measure>_diff`` (the mean difference ``a - b`` over the
paired seeds), ``_low``, ``_high`` (its 95% interval), ``_p`` (the paired t-test's) and ``_n`` (the
seeds paired); one seed's validation IIA compared pair by pair adds ``iia_pairs`` (the pairs its
bootstrap resampled) and has no p-value."""
BOOTSTRAPPED = "iia"
"""The measure whose hits a record keeps pair by pair (``pair_hits``): the validation IIA."""


class CannotCompare(ValueError):
    """A ``--compare`` the folder's runs cannot answer (a setting no run has, a value no run takes); the
    message says why."""


@dataclass(frozen=True)
class Comparison:
    """``<key>=<a>,<b>``: the runs with setting ``key`` at ``a`` against those at ``b`` (differences are
    ``a - b``). ``key`` is one of the runs' settings, or ``direction`` or ``variable``."""

    key: str
    a: str
    b: str

    @classmethod
    def parse(cls, text: str) -> Comparison:
        """``model=gru,lstm`` -> ``Comparison("model", "gru", "lstm")``.

        >>> Comparison.parse("cl_weight=0.1,0.0")
        Comparison(key='cl_weight', a='0.1', b='0.0')
        """
        key, _, values = text.partition("=")
        conditions = [v.strip() for v in values.split(",")]
        if not key.strip() or len(conditions) != 2 or not all(conditions):
            raise CannotCompare(f"--compare {text}: expected <setting>=<a>,<b>, two values (model=gru,lstm)")
        if key.strip() in SEEDS:
            raise CannotCompare(
                f"--compare {text}: the seeds (seed, alignment_seed) are what a comparison pairs, not a condition"
            )
        if conditions[0] == conditions[1]:
            raise CannotCompare(f"--compare {text}: expected two different values")
        return cls(key.strip(), conditions[0], conditions[1])

    def __str__(self) -> str:
        return f"{self.key}={self.a},{self.b}"


def takes(value: Any, text: str) -> bool:
    """Whether a setting's value is the one written ``text`` on the command line: by its text, a number
    by its value (``0.10`` is 0.1), a truth value or None in any case (``true``, ``null``).

    >>> takes(0.1, "0.10"), takes(True, "true"), takes(None, "null"), takes("gru", "lstm")
    (True, True, True, False)
    """
    if str(value) == text:
        return True
    if isinstance(value, bool) or value is None:
        return text.lower() in ({str(value).lower()} | ({"null", "none"} if value is None else set()))
    if isinstance(value, int | float):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    return False


@dataclass
class Compared:
    """What :func:`compare` found: a row per configuration and record, and how the runs paired."""

    comparison: Comparison
    rows: list[dict[str, Any]]
    """Each a configuration's settings, ``direction``, ``variable``, ``n`` (the seeds paired) and, per
    measure, the columns of :data:`STATS`."""
    keys: list[str]
    """The columns of ``rows`` before ``n``: the settings that tell the configurations apart."""
    metrics: list[str]
    """The measures compared: those with a value in both runs of some pair."""
    paired: int = 0
    """Runs of ``a`` paired with a run of ``b``."""
    alone: dict[str, list[str]] = field(default_factory=dict)
    """Per condition (``a``, ``b``), its runs without a partner."""
    with_condition: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """The settings that go with the condition: each with its value in ``a``'s runs and in ``b``'s."""


def compare(
    rows: Sequence[dict[str, Any]],
    config_keys: Sequence[str],
    comparison: Comparison,
    metrics: Sequence[str],
    varying: Sequence[str] = (),
) -> Compared:
    """The paired differences of ``comparison`` over ``rows`` (the report's rows, a partner seed derived
    from the seed folded into it, :func:`~alignsearch.report.aggregate.fold_partner_seeds`): see the
    module's text. ``varying`` are the report's columns (none: every setting); those that vary among the
    pairs head the rows.
    Raises :class:`CannotCompare` where no row has the setting or no row takes one of the values.

    >>> rows = [{"model": m, "seed": s, "direction": "0>0", "variable": "count", "iia": v}
    ...         for m, s, v in (("gru", 0, 0.9), ("gru", 1, 0.8), ("lstm", 0, 0.7), ("lstm", 1, 0.7))]
    >>> out = compare(rows, ["model", "seed"], Comparison("model", "gru", "lstm"), ["iia"])
    >>> out.paired, out.rows[0]["n"], round(out.rows[0]["iia_diff"], 6), out.rows[0]["iia_p"]
    (2, 2, 0.15, 0.204833)
    """
    key = comparison.key
    if not any(key in row for row in rows):
        known = ", ".join(k for k in [*config_keys, *ROW_KEYS] if k not in SEEDS)
        raise CannotCompare(f"--compare {comparison}: no run has the setting {key} (the settings: {known})")
    conditions = {"a": comparison.a, "b": comparison.b}
    sides = {side: [r for r in rows if takes(r.get(key), text)] for side, text in conditions.items()}
    for side, text in conditions.items():
        if not sides[side]:
            seen = ", ".join(sorted({str(r.get(key)) for r in rows}, key=natural_order))
            raise CannotCompare(f"--compare {comparison}: no run has {key}={text} ({key}: {seen})")
    candidates = [k for k in dict.fromkeys([*config_keys, *ROW_KEYS]) if k not in (key, *SEEDS)]
    with_condition = {}
    for k in candidates:
        a_values, b_values = ({_text(r.get(k)) for r in sides[s]} for s in ("a", "b"))
        if len(a_values) == 1 and len(b_values) == 1 and a_values != b_values:
            with_condition[k] = (sides["a"][0].get(k), sides["b"][0].get(k))
    matched = [k for k in candidates if k not in with_condition]
    partners = {_identity(r, matched): r for r in sides["b"]}
    pairs = [(r, partners[_identity(r, matched)]) for r in sides["a"] if _identity(r, matched) in partners]
    settings = [k for k in matched if k not in ROW_KEYS]

    def run(row: dict[str, Any]) -> str:  # a row's run: its folder, else its seed and settings
        return str(row.get("run", _identity(row, settings)))

    done = {"a": {run(a) for a, _ in pairs}, "b": {run(b) for _, b in pairs}}
    alone = {side: sorted({run(r) for r in sides[side]} - done[side]) for side in sides}
    columns = [k for k in (varying or settings) if k in settings]  # no varying given: every setting
    keys = [k for k in columns if len({_text(a.get(k)) for a, _ in pairs}) > 1]
    keys += [k for k in ROW_KEYS if k in matched]
    groups: dict[tuple, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for a, b in pairs:
        groups.setdefault(tuple(a.get(k) for k in keys), []).append((a, b))
    compared = [m for m in metrics if any(_number(a.get(m)) and _number(b.get(m)) for a, b in pairs)]
    out_rows = []
    for group, members in groups.items():
        row: dict[str, Any] = dict(zip(keys, group, strict=True))
        row["n"] = len(members)
        for metric in compared:
            both = [
                (a[metric], b[metric])
                for a, b in members
                if _number(a.get(metric)) and _number(b.get(metric))
            ]
            found = (
                paired_difference([x for x, _ in both], [y for _, y in both], bounds=difference_range(metric))
                if both
                else None
            )
            row |= _columns(metric, found)
            if metric == BOOTSTRAPPED and len(members) == 1:
                row |= one_seed_bootstrap(*members[0])
        out_rows.append(row)
    out_rows.sort(key=lambda r: tuple(natural_order(r[k]) for k in keys))
    return Compared(comparison, out_rows, keys, compared, len(done["a"]), alone, with_condition)


def one_seed_bootstrap(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The validation IIA of two runs of one seed compared pair by pair: ``iia_diff``, its 95% paired
    bootstrap interval over the pairs (``iia_low``, ``iia_high``; seeded: the same on every machine) and
    ``iia_pairs``; nothing where either record lacks its hits or the two were not evaluated on the same
    pairs.

    >>> one_seed_bootstrap({"pair_hits": "1101", "pairs_sha256": "x"}, {"pair_hits": "1001", "pairs_sha256": "x"})
    {'iia_diff': 0.25, 'iia_low': 0.0, 'iia_high': 0.75, 'iia_p': None, 'iia_n': 1, 'iia_pairs': 4}
    >>> one_seed_bootstrap({"pair_hits": "1101", "pairs_sha256": "x"}, {"pair_hits": "1001", "pairs_sha256": "y"})
    {}
    """
    hits_a, hits_b = a.get("pair_hits"), b.get("pair_hits")
    if not hits_a or not hits_b or len(hits_a) != len(hits_b):
        return {}
    if a.get("pairs_sha256") is None or a.get("pairs_sha256") != b.get("pairs_sha256"):
        return {}
    diff, low, high = paired_bootstrap([int(h) for h in hits_a], [int(h) for h in hits_b])
    return {
        f"{BOOTSTRAPPED}_diff": diff, f"{BOOTSTRAPPED}_low": low, f"{BOOTSTRAPPED}_high": high,
        f"{BOOTSTRAPPED}_p": None, f"{BOOTSTRAPPED}_n": 1, f"{BOOTSTRAPPED}_pairs": len(hits_a),
    }  # fmt: skip


def difference_range(metric: str) -> tuple[float, float] | None:
    """The values a difference of a measure can take, which its interval is clipped to: -1 to 1 for a
    share, -2 to 2 for a measure from -1 to 1 (the selectivity); None for a measure without an upper
    bound (a divergence) or of an unknown range.

    >>> difference_range("iia"), difference_range("selectivity"), difference_range("divergence")
    ((-1.0, 1.0), (-2.0, 2.0), None)
    """
    bounds = measure_range(metric)
    if bounds is None or math.isinf(bounds[1] - bounds[0]):
        return None
    width = bounds[1] - bounds[0]
    return (-width, width)


def _columns(metric: str, found: PairedDifference | None) -> dict[str, Any]:
    if found is None:
        return {f"{metric}_{stat}": None for stat in STATS[:-1]} | {f"{metric}_n": 0}
    return {
        f"{metric}_diff": found.mean,
        f"{metric}_low": found.low,
        f"{metric}_high": found.high,
        f"{metric}_p": found.p,
        f"{metric}_n": found.n,
    }


def _identity(row: dict[str, Any], keys: Sequence[str]) -> tuple:
    return (*(_text(row.get(seed)) for seed in SEEDS), *(_text(row.get(k)) for k in keys))


def _text(value: Any) -> str:
    return str(value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def p_value(p: float | None) -> str:
    """``p=0.004``; ``p<0.001`` below that; ``-`` where there is none.

    >>> p_value(0.0041), p_value(0.000145), p_value(None)
    ('p=0.004', 'p<0.001', '-')
    """
    if p is None:
        return MISSING
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def difference_cell(row: dict[str, Any], metric: str) -> str:
    """A measure's cell of the comparison: ``0.310 [0.086, 0.534] p=0.027 (n=3)``; one seed:
    ``0.310 (n=1)``; ``-`` where no pair has the measure.

    >>> difference_cell({"iia_diff": 0.31, "iia_low": 0.086428, "iia_high": 0.533572, "iia_p": 0.026965,
    ...                  "iia_n": 3}, "iia")
    '0.310 [0.086, 0.534] p=0.027 (n=3)'
    >>> difference_cell({"iia_diff": 0.05, "iia_low": 0.02, "iia_high": 0.08, "iia_n": 1, "iia_pairs": 1000}, "iia")
    '0.050 [0.020, 0.080] (n=1, 1000 pairs)'
    """
    diff, n = row.get(f"{metric}_diff"), row.get(f"{metric}_n")
    if diff is None:
        return MISSING
    low, high = row.get(f"{metric}_low"), row.get(f"{metric}_high")
    if low is None or high is None:
        return f"{number(diff)} (n={n})"
    if row.get(f"{metric}_pairs"):  # one seed, bootstrapped over its pairs
        return f"{number(diff)} [{number(low)}, {number(high)}] (n=1, {row[f'{metric}_pairs']} pairs)"
    return f"{number(diff)} [{number(low)}, {number(high)}] {p_value(row.get(f'{metric}_p'))} (n={n})"


def comparison_section(compared: Compared) -> str:
    """The "Comparison" section of ``report.md``: how the runs paired, the table of differences and what
    a cell is."""
    c = compared.comparison
    lines = [f"## Comparison: {c.key}={c.a} minus {c.key}={c.b}", ""]
    said = (
        f"Paired by seed, every other setting alike: {compared.paired} run(s) of {c.key}={c.a} with one of"
        f" {c.key}={c.b}"
    )
    for side, text in (("a", c.a), ("b", c.b)):
        runs = compared.alone.get(side, [])
        if runs:
            named = ", ".join(f"`{r}`" for r in runs)
            said += f"; {len(runs)} run(s) of {c.key}={text} without a partner ({named})"
    lines.append(said + ".")
    if compared.with_condition:
        differing = ", ".join(f"{k} ({a} against {b})" for k, (a, b) in compared.with_condition.items())
        lines.append(f"Settings that change with {c.key}, so not paired on: {differing}.")
    if not compared.rows:
        lines += ["", "No pairs: no run of one condition has a partner in the other."]
        return "\n".join(lines) + "\n"
    header = [*compared.keys, "n", *(title(m) for m in compared.metrics)]
    table = [
        [
            *(str(row[k]) for k in compared.keys),
            str(row["n"]),
            *(difference_cell(row, m) for m in compared.metrics),
        ]
        for row in compared.rows
    ]
    lines += [
        "",
        markdown_table(header, table, pad=False),
        "",
        f"Each cell: the mean over the paired seeds of the measure at {c.key}={c.a} minus at {c.key}={c.b}"
        " (the same seed), its 95% interval (Student's t over the per-seed differences), the two-sided"
        " p-value of the paired t-test and the number of seeds paired; one seed: for the validation IIA, a"
        " paired bootstrap over its pairs (both runs on the same pairs, their hits pair by pair), for the"
        " other measures the difference alone."
        f" The numbers: {COMPARISON_CSV}.",
    ]
    return "\n".join(lines) + "\n"


def comparison_csv(compared: Compared) -> str:
    """The comparison's rows as CSV (unrounded), as ``report.csv`` writes its own."""
    return to_csv(compared.rows)
