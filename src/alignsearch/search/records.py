"""What an alignment run finds, one record per direction and variable, and how it reads as a table.

A record is the finished alignment of one *track*: a source model, a target model and a variable. Its
JSON form is a flat object (what ``results.json`` holds, under ``records``), with each control's
validation IIA as ``iia_control_<name>`` and its divergence at the site as ``divergence_control_<name>``::

    {"source": "multiobject/gru/seed0", "target": "multiobject/gru/seed0", "direction": "0>0",
     "variable": "count", "trained": true, "loss": "behaviour", "iia": 0.97, "iia_heldout": 0.96,
     "iia_test": 0.96, "token_iia": 0.99, "iia_step0": 0.05, "iia_by_position": {"4": 0.98},
     "divergence": 0.35, "divergence_floor": 0.09, "divergence_top": null, "divergence_top_floor": null,
     "n_pairs": 1000, "iia_low": 0.9575, "iia_high": 0.9789, "token_iia_low": 0.986, "token_iia_high": 0.993,
     "iia_step0_low": 0.0381, "iia_step0_high": 0.0653, "n_pairs_heldout": 1000, "iia_heldout_low": 0.946,
     "iia_heldout_high": 0.9705, "n_pairs_test": 1000, "iia_test_low": 0.946, "iia_test_high": 0.9705,
     "n_pairs_by_position": {"4": 1000}, "iia_by_position_interval": {"4": [0.9693, 0.987]},
     "iia_control_random_subspace": 0.1, "divergence_control_random_subspace": 0.6}

Each IIA comes with the number of pairs it was measured on and its 95% interval over those pairs
(:data:`INTERVALS`; :mod:`alignsearch.intervals`): Wilson's for the share of pairs right (``iia``,
``iia_heldout``, ``iia_test``, ``iia_step0``), a seeded bootstrap over pairs for the share of task tokens
right (``token_iia``); the IIA at each base position, Wilson's over that position's pairs. Records
written before schema 5 have none (the keys absent, the fields None), before schema 7 none by position.

``results.json`` says which form its records have (``schema``: :data:`SCHEMA`); files written before it
existed (no ``schema``) hold the same keys, so :meth:`AlignmentRecord.from_json` reads both. The whole
file is one :class:`~alignsearch.search.results.RunResults`, which checks each record's keys and values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alignsearch.tables import markdown_table, number, with_interval

SPLIT_METRICS = ("iia", "iia_heldout", "iia_test")
"""A record's IIA on each split: validation, held-out counts, test."""
DIVERGENCE_KEYS = ("divergence", "divergence_floor", "divergence_top", "divergence_top_floor")
"""The divergence measures a record holds (None where not measured: records written before them)."""
SCHEMA = 7
"""The version of ``results.json``'s form: 1, files without a ``schema`` key; 2, the same records with
it; 3, records with the divergence measures (older records read with them as None); 4, records of runs
with controls hold each control's divergence too, ``divergence_control_<name>`` beside
``iia_control_<name>`` (older records read with none: ``control_divergence`` empty); 5, every IIA of a
record has its number of pairs and its 95% interval over them (:data:`INTERVALS`; older records read
with them as None); 6, each control's IIA too: ``n_pairs_control_<name>``, ``iia_low_control_<name>`` and
``iia_high_control_<name>`` after ``iia_control_<name>``, and which validation pairs each record got right
(``pair_hits``, ``pairs_sha256``; older records read with none); 7, the IIA by position too: each
position's pairs (``n_pairs_by_position``) and interval (``iia_by_position_interval``, ``[low, high]``)."""
INTERVALS = {
    "iia": ("n_pairs", "iia_low", "iia_high"),
    "token_iia": ("n_pairs", "token_iia_low", "token_iia_high"),
    "iia_step0": ("n_pairs", "iia_step0_low", "iia_step0_high"),
    "iia_heldout": ("n_pairs_heldout", "iia_heldout_low", "iia_heldout_high"),
    "iia_test": ("n_pairs_test", "iia_test_low", "iia_test_high"),
}
"""Each IIA of a record -> the keys of its number of pairs and of its 95% interval's bounds (schema 5):
the validation pairs count for ``iia``, ``token_iia`` (bootstrap over them) and ``iia_step0`` (the same
pairs, before training)."""
INTERVAL_FIELDS = tuple(dict.fromkeys(key for keys in INTERVALS.values() for key in keys))
"""The keys of :data:`INTERVALS`, in the order a record's JSON form writes them."""
PAIR_COUNTS = tuple(dict.fromkeys(keys[0] for keys in INTERVALS.values()))
"""The keys of the numbers of pairs: ``n_pairs`` (validation), ``n_pairs_heldout``, ``n_pairs_test``."""
CONTROL_PREFIX = "iia_control_"
"""A control's validation IIA in a record's JSON form: ``iia_control_<name>``."""
CONTROL_INTERVAL_PREFIXES = ("n_pairs_control_", "iia_low_control_", "iia_high_control_")
"""A control's trials and the 95% Wilson interval of its IIA over them, in a record's JSON form (schema 6):
``n_pairs_control_<name>``, ``iia_low_control_<name>``, ``iia_high_control_<name>``."""
CONTROL_DIVERGENCE_PREFIX = "divergence_control_"
"""A control's divergence at the site in a record's JSON form: ``divergence_control_<name>``."""
DEFAULT_DIRECTION = "0>0"
"""The direction of a record (or a ``metrics.csv`` row) that names none: written before MAS, model 0 in itself."""


@dataclass(frozen=True)
class ControlScore:
    """What one control gives for one track, on the validation pairs: its IIA and its ``divergence`` (the
    measure of :attr:`AlignmentRecord.divergence`, of the control's interventions; None where not
    measured)."""

    iia: float
    divergence: float | None
    trials: int | None = None
    """The interventions ``iia`` is the share of: the validation pairs, times the draws where the control
    averages several (``random_subspace``: each draw on the same pairs, pooled). None: not known."""
    low: float | None = None
    """The 95% Wilson interval of ``iia`` over its ``trials``: its lower bound ..."""
    high: float | None = None
    """... and its upper bound."""


@dataclass
class AlignmentRecord:
    """The finished alignment of one (source model, target model, variable): IIA on every split.

    ``iia`` is the validation IIA (every task token of a counterfactual run right); ``token_iia`` the
    fraction of task tokens right, teacher-forced. ``iia_heldout`` is on counts held out of the task
    models' training (None where the task holds none out), ``iia_test`` on pairs used for nothing else.
    ``iia_step0`` is the validation IIA of the alignment as initialised (a random rotation).
    """

    source: str
    target: str
    direction: str
    """``"<source index>><target index>"``: ``0>0`` for DAS, ``0>1`` from model 0 into model 1."""
    variable: str
    trained: bool
    """Whether this track was trained (MAS may train some directions and only evaluate others)."""
    loss: str | None
    iia: float
    iia_heldout: float | None
    iia_test: float | None
    token_iia: float | None
    iia_step0: float | None
    iia_by_position: dict[str, float] = field(default_factory=dict)
    """Validation IIA by the base position of the intervention."""
    n_pairs_by_position: dict[str, int] = field(default_factory=dict)
    """The validation pairs intervened at each base position (``{"4": 250}``; schema 7: empty before)."""
    iia_by_position_interval: dict[str, tuple[float, float]] = field(default_factory=dict)
    """The 95% Wilson interval of each position's IIA over its pairs (``{"4": (0.95, 0.99)}``; schema 7)."""
    source_variable: str | None = None
    """Set where the models' variables differ (Up-Down ``count`` in model 0, Up-Up ``demo_count`` in 1)."""
    target_variable: str | None = None
    cl_loss: float | None = None
    cl_divergence: float | None = None
    divergence: float | None = None
    """How far the interventions push the target off its natural states at the site, on validation
    pairs: the Earth Mover's Distance per feature in units of the natural spread, averaged
    (:mod:`alignsearch.search.divergence`); compare it with ``divergence_floor``."""
    divergence_floor: float | None = None
    """The same measure between two halves of the natural states: what sampling alone gives."""
    divergence_top: float | None = None
    """The same at the target's top states at the scored positions (None where the site is the top)."""
    divergence_top_floor: float | None = None
    controls: dict[str, float | None] = field(default_factory=dict)
    """Validation IIA of each control run beside this alignment (``alignment.controls``)."""
    control_divergence: dict[str, float | None] = field(default_factory=dict)
    """Each control's ``divergence`` (at the site, on validation pairs, the same measure as this record's);
    empty in records written before schema 4."""
    control_intervals: dict[str, tuple[int, float, float]] = field(default_factory=dict)
    """Each control's trials and the 95% interval of its IIA over them (:class:`ControlScore`); empty in
    records written before schema 6."""
    n_pairs: int | None = None
    """The validation pairs ``iia``, ``token_iia`` and ``iia_step0`` were measured on (None: a record
    written before schema 5)."""
    iia_low: float | None = None
    """The 95% Wilson interval of ``iia`` over its ``n_pairs`` pairs: its lower bound ..."""
    iia_high: float | None = None
    """... and its upper bound."""
    token_iia_low: float | None = None
    """The 95% bootstrap interval of ``token_iia`` over the same pairs (seeded: the same on every
    machine)."""
    token_iia_high: float | None = None
    iia_step0_low: float | None = None
    """The 95% Wilson interval of ``iia_step0`` (the same validation pairs, before training)."""
    iia_step0_high: float | None = None
    n_pairs_heldout: int | None = None
    """The pairs of ``iia_heldout`` (None where the task holds no count out)."""
    iia_heldout_low: float | None = None
    iia_heldout_high: float | None = None
    n_pairs_test: int | None = None
    """The pairs of ``iia_test``."""
    iia_test_low: float | None = None
    iia_test_high: float | None = None
    pair_hits: str | None = None
    """Which validation pairs the alignment got right, in their order: ``"1"`` or ``"0"`` per pair
    (``"1101"``: all but the third of four). Two runs on the same pairs (``pairs_sha256``) compared pair
    by pair give a paired bootstrap of one seed (``python -m alignsearch.report --compare``). None in
    records written before schema 6."""
    pairs_sha256: str | None = None
    """A digest of the validation pairs' inputs (base sequences and intervened positions, in order): the
    same in two runs that were evaluated on the same pairs, whatever their causal models or models."""

    @property
    def selectivity(self) -> float | None:
        """IIA minus the best control (None without controls).

        >>> AlignmentRecord.from_json({"variable": "count", "iia": 0.9, "iia_control_shuffled": 0.2}).selectivity
        0.7
        """
        scores = [v for v in self.controls.values() if isinstance(v, int | float) and not isinstance(v, bool)]
        return self.iia - max(scores) if scores else None

    def interval(self, metric: str = "iia") -> tuple[float, float] | None:
        """The 95% interval over pairs of one of the record's IIAs (a key of :data:`INTERVALS`); None where
        the record has none (written before schema 5, or a split the run has not).

        >>> AlignmentRecord.from_json({"variable": "count", "iia": 0.9, "n_pairs": 50, "iia_low": 0.786,
        ...                            "iia_high": 0.957}).interval("iia")
        (0.786, 0.957)
        """
        _, low, high = INTERVALS[metric]
        bounds = getattr(self, low), getattr(self, high)
        return None if bounds[0] is None or bounds[1] is None else (bounds[0], bounds[1])

    def pairs(self, metric: str = "iia") -> int | None:
        """The number of pairs one of the record's IIAs was measured on (None where not recorded)."""
        return getattr(self, INTERVALS[metric][0])

    @property
    def name(self) -> str:
        """The track's name, ``0>1/count``."""
        return f"{self.direction}/{self.variable}"

    def to_json(self) -> dict[str, Any]:
        """The flat JSON object of ``results.json`` (optional keys only where they are set; the pairs and
        intervals of :data:`INTERVALS` all together, where the record has its number of pairs)."""
        skip = (*OPTIONAL, *CONTROL_FIELDS, *INTERVAL_FIELDS, *POSITION_INTERVAL_FIELDS)
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}
        if self.n_pairs is not None:
            out |= {key: getattr(self, key) for key in INTERVAL_FIELDS}
        if self.n_pairs_by_position:
            out["n_pairs_by_position"] = dict(self.n_pairs_by_position)
            out["iia_by_position_interval"] = {p: list(b) for p, b in self.iia_by_position_interval.items()}
        for key in OPTIONAL:
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        for name in dict.fromkeys([*self.controls, *self.control_divergence]):
            if name in self.controls:
                out[f"{CONTROL_PREFIX}{name}"] = self.controls[name]
            if name in self.control_intervals:
                keys = (f"{p}{name}" for p in CONTROL_INTERVAL_PREFIXES)
                out |= dict(zip(keys, self.control_intervals[name], strict=True))
            if name in self.control_divergence:
                out[f"{CONTROL_DIVERGENCE_PREFIX}{name}"] = self.control_divergence[name]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlignmentRecord:
        """A record from its JSON form (any schema so far; keys a record lacks take their defaults)."""
        known = {f.name for f in dataclasses.fields(cls)} - set(CONTROL_FIELDS)
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("direction", DEFAULT_DIRECTION)
        for key in ("source", "target"):
            values.setdefault(key, "")
        for key in ("loss", "iia_heldout", "iia_test", "token_iia", "iia_step0"):
            values.setdefault(key, None)
        values.setdefault("trained", True)
        if "iia_by_position_interval" in values:
            values["iia_by_position_interval"] = {
                p: (b[0], b[1]) for p, b in values["iia_by_position_interval"].items()
            }
        return cls(
            **values,
            controls={
                k.removeprefix(CONTROL_PREFIX): v for k, v in data.items() if k.startswith(CONTROL_PREFIX)
            },
            control_divergence={
                k.removeprefix(CONTROL_DIVERGENCE_PREFIX): v
                for k, v in data.items()
                if k.startswith(CONTROL_DIVERGENCE_PREFIX)
            },
            control_intervals=control_intervals_of(data),
        )

    def with_controls(self, scores: Mapping[str, Mapping[str, ControlScore]]) -> AlignmentRecord:
        """This record with each control's IIA and divergence for its track (``{control: {track name:
        ControlScore}}``, what :func:`alignsearch.search.controls.run_controls` gives; None for a control
        without this track)."""
        mine = {control: per.get(self.name) for control, per in scores.items()}
        return dataclasses.replace(
            self,
            controls={**self.controls, **{c: s.iia if s is not None else None for c, s in mine.items()}},
            control_divergence={
                **self.control_divergence,
                **{c: s.divergence if s is not None else None for c, s in mine.items()},
            },
            control_intervals={
                **{c: v for c, v in self.control_intervals.items() if c not in mine},
                **{
                    c: (s.trials, s.low, s.high)
                    for c, s in mine.items()
                    if s is not None and s.trials is not None and s.low is not None and s.high is not None
                },
            },
        )

    def control_interval(self, name: str) -> tuple[float, float] | None:
        """The 95% interval over its trials of a control's IIA; None where the record has none."""
        found = self.control_intervals.get(name)
        return None if found is None else (found[1], found[2])

    def shown_variable(self) -> str:
        """The variable as a table shows it: ``count``, or ``count -> demo_count`` across variables."""
        if self.source_variable is not None:
            return f"{self.source_variable} -> {self.target_variable}"
        return self.variable


OPTIONAL = ("source_variable", "target_variable", "cl_loss", "cl_divergence", "pair_hits", "pairs_sha256")
"""Keys a record's JSON form holds only where they apply."""
POSITION_INTERVAL_FIELDS = ("n_pairs_by_position", "iia_by_position_interval")
"""The pairs and intervals of ``iia_by_position`` (schema 7): written together, where a record has them."""
CONTROL_FIELDS = ("controls", "control_divergence", "control_intervals")
"""The fields a record's JSON form holds flat, one key per control (``iia_control_<name>``, ...)."""
TABLE_METRICS = (
    ("IIA val", "iia"),
    ("held-out", "iia_heldout"),
    ("test", "iia_test"),
    ("token IIA", "token_iia"),
    ("step 0", "iia_step0"),
    ("divergence", "divergence"),
    ("floor", "divergence_floor"),
)


def records_table(records: Sequence[AlignmentRecord]) -> str:
    """The records as one table (markdown, readable as plain text): a row per direction and variable,
    each IIA with its 95% interval over pairs where the record has one (``0.957 [0.944, 0.968]``), and,
    where the run has controls, each control's IIA (and, where the records hold it, its divergence
    after a slash: ``0.087 / 0.412``) and the selectivity. Every place that shows a run's records (the
    console, ``AlignmentResult.table()``) shows this table."""
    controls = list(dict.fromkeys(name for r in records for name in r.controls))
    diverging = any(r.control_divergence for r in records)
    title = "control IIA / divergence" if diverging else "control"
    header = ["direction", "variable", "trained by", *(title for title, _ in TABLE_METRICS)]
    header += [f"{title}: {name}" for name in controls] + (["selectivity"] if controls else [])
    rows = []
    for r in records:
        row = [r.direction, r.shown_variable(), r.loss or "-"]
        row += [
            with_interval(getattr(r, key), r.interval(key) if key in INTERVALS else None)
            for _, key in TABLE_METRICS
        ]
        for name in controls:
            cell = with_interval(r.controls.get(name), r.control_interval(name))
            row.append(f"{cell} / {number(r.control_divergence.get(name))}" if diverging else cell)
        rows.append(row + ([number(r.selectivity)] if controls else []))
    return markdown_table(header, rows)


def models_legend(records: Sequence[AlignmentRecord]) -> str:
    """``model 0 = multiobject/gru/seed0, model 1 = ...``: the models the directions number."""
    names: dict[int, str] = {}
    for r in records:
        source, target = (int(i) for i in r.direction.split(">"))
        names.setdefault(source, r.source)
        names.setdefault(target, r.target)
    return ", ".join(f"model {i} = {names[i]}" for i in sorted(names))


def control_intervals_of(data: Mapping[str, Any]) -> dict[str, tuple[int, float, float]]:
    """The controls' trials and intervals in a record's JSON form (schema 6), for controls that have all
    three keys.

    >>> control_intervals_of({"iia_control_shuffled": 0.1, "n_pairs_control_shuffled": 50,
    ...                       "iia_low_control_shuffled": 0.043, "iia_high_control_shuffled": 0.214})
    {'shuffled': (50, 0.043, 0.214)}
    """
    trials, low, high = CONTROL_INTERVAL_PREFIXES
    names = [k.removeprefix(trials) for k in data if k.startswith(trials)]
    return {
        name: (data[f"{trials}{name}"], data[f"{low}{name}"], data[f"{high}{name}"])
        for name in names
        if all(data.get(f"{p}{name}") is not None for p in CONTROL_INTERVAL_PREFIXES)
    }
