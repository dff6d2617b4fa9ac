"""Typed settings of the config groups, checked in one place: types, ranges and unknown keys.

Each group of plain settings (``training``, ``hardware``, ``alignment``) is a frozen dataclass whose
fields carry their rule; :func:`parse` turns a config node into one, or raises a one-line
:class:`ConfigError` naming the key, the value and what is allowed::

    >>> TrainingSettings.parse({**TRAINING_DEFAULTS, "lr": "fast"})
    Traceback (most recent call last):
    ...
    alignsearch.errors.ConfigError: training.lr=fast is not allowed: expected a positive number

A key that no field reads is refused with the closest known key (``training.max_step`` -> did you mean
``training.max_steps``). The defaults live in the YAML of each group (``conf/training/default.yaml``);
the dataclasses say what a setting means and what it may be.

Training settings are split by what they change (:meth:`TrainingSettings.identity`): every setting that
changes the trained weights names the zoo entry; ``checkpoint_every`` (when resume points are written),
``eval_batch_size`` (how evaluation is batched), ``n_heldout`` (how many held-out sequences the final
metrics use) and ``keep_steps`` (which snapshots are kept besides the final weights) do not.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from omegaconf import OmegaConf

from alignsearch.controls import CONTROLS, control_names
from alignsearch.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Check = Callable[[str, Any], Any]
"""A rule: ``check(key, value)`` returns the value in its proper type or raises a ConfigError."""

T = TypeVar("T", bound="DataclassInstance")
INT, NUMBER, LIST = (int,), (int, float), (list, tuple)
"""What the rules expect, by Python type (named in the errors of a Python call with another type)."""


WHEN_SET = "when_set"
"""A setting's ``identity`` for settings added after runs existed: part of a run's identity only when it
differs from its default, so that finished runs of the older settings stay theirs."""


def setting(check: Check, *, identity: bool | str = True, default: Any = dataclasses.MISSING) -> Any:
    """A dataclass field checked by ``check``; ``identity=False`` marks a setting that leaves the
    trained weights unchanged (it does not name a zoo entry); ``identity=WHEN_SET``, one that names a run
    only where it is not at its default."""
    return field(default=default, metadata={"check": check, "identity": identity})


# -- rules ------------------------------------------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def positive_int(key: str, value: Any) -> int:
    if not _is_int(value) or value < 1:
        raise ConfigError(key, value, "a positive integer", INT)
    return value


def non_negative_int(key: str, value: Any) -> int:
    if not _is_int(value) or value < 0:
        raise ConfigError(key, value, "a non-negative integer", INT)
    return value


SEED_MAX = 2**32 - 1
"""The largest seed: what every generator a seed reaches takes (NumPy's and Lightning's seeds are 32-bit)."""


def seed_value(key: str, value: Any) -> int:
    """A seed: a non-negative integer up to :data:`SEED_MAX` (``2**70`` is a one-line ConfigError, not an
    overflow deep in a generator).

    >>> seed_value("seed", 7)
    7
    """
    if not _is_int(value) or not 0 <= value <= SEED_MAX:
        raise ConfigError(key, value, f"a non-negative integer up to {SEED_MAX} (a seed)", INT)
    return value


def positive_number(key: str, value: Any) -> float:
    if not _is_number(value) or value <= 0:
        raise ConfigError(key, value, "a positive number", NUMBER)
    return float(value)


def non_negative_number(key: str, value: Any) -> float:
    if not _is_number(value) or value < 0:
        raise ConfigError(key, value, "a non-negative number", NUMBER)
    return float(value)


def accuracy(key: str, value: Any) -> float:
    """An accuracy threshold in (0, 1]."""
    if not _is_number(value) or not 0 < value <= 1:
        raise ConfigError(key, value, "an accuracy in (0, 1]", NUMBER)
    return float(value)


def fraction(key: str, value: Any) -> float:
    """A number in [0, 1]."""
    if not _is_number(value) or not 0 <= value <= 1:
        raise ConfigError(key, value, "a number in [0, 1]", NUMBER)
    return float(value)


def boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, value, "true or false", (bool,))
    return value


def text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(key, value, "a non-empty string", (str,))
    return value


def one_of(*choices: Any) -> Check:
    def check(key: str, value: Any) -> Any:
        if isinstance(value, bool) or value not in choices:
            raise ConfigError(key, value, f"one of {', '.join(map(str, choices))}")
        return value

    return check


def optional(check: Check, what: str = "null") -> Check:
    """``check``, or ``None``; the message adds ``, or null``."""

    def optional_check(key: str, value: Any) -> Any:
        if value is None:
            return None
        try:
            return check(key, value)
        except ConfigError as e:
            raise ConfigError(key, value, f"{e.allowed}, or {what}", e.expects) from None

    return optional_check


def step_list(key: str, value: Any) -> tuple[int, ...]:
    """A list of training steps (positive integers)."""
    if not isinstance(value, list | tuple) or not all(_is_int(v) and v > 0 for v in value):
        raise ConfigError(key, value, "a list of positive integers (training steps), e.g. [100,200]", LIST)
    return tuple(value)


def variable_list(key: str, value: Any) -> tuple[str | None, ...]:
    """Names of causal variables, distinct (``null``, the remainder of the space, as None).

    >>> variable_list("alignment.variables", ["count", None])
    ('count', None)
    """
    value = plain(value)
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(v is None or (isinstance(v, str) and v) for v in value)
        or len(set(value)) != len(value)
    ):
        raise ConfigError(key, value, "a non-empty list of distinct variable names", LIST)
    return tuple(value)


def any_value(key: str, value: Any) -> Any:
    """A setting checked where it is used (a ``_target_`` node, a list of names)."""
    return value


# -- parsing ----------------------------------------------------------------------------------------------
def plain(node: Any) -> Any:
    """A config node as plain Python values (interpolations resolved)."""
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return node


def parse(cls: type[T], node: Mapping | Any, prefix: str, *, known: tuple[str, ...] = ()) -> T:
    """``cls`` from ``node``: every field checked by its rule, every key of ``node`` read by a field
    (or listed in ``known``), else a one-line ConfigError keyed ``<prefix>.<key>``."""
    values = plain(node)
    if not isinstance(values, Mapping):
        raise ConfigError(prefix, values, "a group of settings")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    dotted = f"{prefix}.".lstrip(".")  # "" for top-level keys
    for key in values:
        if key not in fields and key not in known:
            raise unknown_key(f"{dotted}{key}", values[key], [f"{dotted}{k}" for k in fields])
    out = {}
    for name, f in fields.items():
        key = f"{dotted}{name}"
        if name not in values:
            if f.default is not dataclasses.MISSING:
                continue
            raise ConfigError(key, "(missing)", f"a value for {key} (see conf/{prefix})")
        out[name] = f.metadata["check"](key, values[name])
    instance = cls(**out)
    check_together = getattr(instance, "check", None)
    if check_together is not None:
        check_together()
    return instance


def unknown_key(key: str, value: Any, known: list[str]) -> ConfigError:
    """The error for a key nothing reads, naming the closest known key."""
    prefix, _, name = key.rpartition(".")
    siblings = {k.rpartition(".")[2]: k for k in known if k.rpartition(".")[0] == prefix}
    if siblings:  # compare the last part only: a shared prefix makes every key look close
        close = [siblings[c] for c in difflib.get_close_matches(name, list(siblings), n=1, cutoff=0.6)]
    else:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"one of {', '.join(sorted(known))}"
    return ConfigError(key, value, f"a known setting ({hint})")


# -- the groups -------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class TrainingSettings:
    """How a task model is trained (``conf/training/default.yaml``)."""

    batch_size: int = setting(positive_int)
    lr: float = setting(positive_number)
    weight_decay: float = setting(non_negative_number)
    warmup_steps: int = setting(non_negative_int)
    grad_clip: float = setting(non_negative_number)  # 0: no clipping
    loss_on: str = setting(one_of("task", "all"))
    max_steps: int = setting(positive_int)
    val_every: int = setting(positive_int)
    n_val: int = setting(positive_int)
    n_heldout: int = setting(positive_int, identity=False)
    eval_batch_size: int = setting(positive_int, identity=False)
    stop_at: float = setting(accuracy)
    stop_patience: int = setting(positive_int)
    checkpoint_every: int = setting(positive_int, identity=False)
    keep_steps: tuple[int, ...] = setting(step_list, identity=False)

    @classmethod
    def parse(cls, node: Mapping | Any) -> TrainingSettings:
        return parse(cls, node, "training")

    def check(self) -> None:
        for step in self.keep_steps:
            if step > self.max_steps:
                raise ConfigError(
                    "training.keep_steps",
                    list(self.keep_steps),
                    f"steps in [1, {self.max_steps}] (training.max_steps)",
                )

    def identity(self) -> dict[str, Any]:
        """The settings that change the trained weights, by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata["identity"]}


PRECISIONS = ("64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", 64, 32, 16)


@dataclass(frozen=True, kw_only=True)
class HardwareSettings:
    """Where and how Lightning runs (``conf/hardware``); none of these names a zoo entry."""

    accelerator: str = setting(one_of("cpu", "gpu", "cuda", "mps", "auto"))
    devices: int = setting(positive_int)
    precision: str | int = setting(one_of(*PRECISIONS))
    threads: int | None = setting(optional(positive_int, "null (the CPUs this process may use)"))
    progress_bar: bool = setting(boolean)
    """Show training's progress: a rich bar when stdout is a terminal, else plain lines
    (:mod:`alignsearch.engine.progress`)."""
    progress_every: float = setting(positive_number, default=10.0)
    """Seconds between progress lines when stdout is not a terminal (a Slurm log, a file, a pipe)."""
    slurm_requeue: bool | None = setting(optional(boolean), default=None)

    @classmethod
    def parse(cls, node: Mapping | Any) -> HardwareSettings:
        return parse(cls, node, "hardware")


CL_SPACES = ("full", "subspace")
"""Where the counterfactual-latent loss compares vectors (``alignment.cl_space``)."""


def control_list(key: str, value: Any) -> tuple[str, ...]:
    """A list of distinct names of registered controls (:data:`alignsearch.controls.CONTROLS`, read as the
    settings are: a control registered after this module was imported is known).

    >>> control_list("alignment.controls", ["shuffled", "random_subspace"])
    ('shuffled', 'random_subspace')
    """
    value = plain(value)
    if (
        not isinstance(value, list | tuple)
        or any(v not in CONTROLS for v in value)
        or len(set(value)) != len(value)
    ):
        raise ConfigError(
            key, value, f"a list of distinct controls from {', '.join(control_names())} (or [])", LIST
        )
    return tuple(value)


class TargetNode(TypedDict):
    """A ``_target_`` node: the dotted name of the class it builds, beside that class's own arguments
    (``{"_target_": "alignsearch.alignment.BoundlessLayout", "size_weight": 0.01}``)."""

    _target_: str


Directions = Sequence[Sequence[int] | str]
"""``alignment.directions`` as written, [source, target] pairs of model numbers (``[[0, 1], [1, 1]]`` or
``["0>1", "1>1"]``): read and checked against the run's models by
:func:`alignsearch.search.planning.parse_directions`."""


@dataclass(frozen=True, kw_only=True)
class AlignmentSettings:
    """How an alignment is trained and evaluated (``conf/alignment_base.yaml`` and ``conf/alignment``).

    ``function`` and ``layout`` are ``_target_`` nodes and ``variables``/``directions`` are checked
    against the models and causal models when the run is planned.
    """

    name: str = setting(text)
    function: TargetNode = setting(any_value)
    layout: TargetNode = setting(any_value)
    variables: tuple[str | None, ...] = setting(variable_list)
    causal_model: str = setting(text)
    stepwise: bool = setting(boolean)
    keep_extrapolation: bool = setting(boolean)
    models: int = setting(one_of(1, 2))
    directions: Directions | None = setting(any_value)
    """None: every (source, target) pair of the models."""
    cl_directions: Directions | None = setting(any_value)
    cl_eps: float = setting(non_negative_number)
    """The counterfactual-latent loss's weight on ``cl_directions`` (directions trained by it)."""
    cl_weight: float = setting(non_negative_number, identity=WHEN_SET, default=0.0)
    """The counterfactual-latent loss's weight added to every behavioural direction (0: none): DAS and
    every MAS variant can keep their interventions near the target's natural states (arXiv 2511.04638)."""
    cl_space: str = setting(one_of(*CL_SPACES), identity=WHEN_SET, default="full")
    """Where the counterfactual-latent loss compares the intervened vector with its natural target:
    ``full``, the whole vector; ``subspace``, only their coordinates in the variable's aligned subspace
    (the causal-subspace-targeted form)."""
    keep_target: bool = setting(boolean)
    match_scales: bool = setting(boolean, identity=WHEN_SET, default=False)
    """Match the models' scales (:mod:`alignsearch.alignment.interchange`): each model's activations are
    standardized feature by feature from its natural states, and its aligned coordinates get a learned
    scale and offset, so that rotations can carry a variable between models whose states differ in
    scale. On for MAS and its family (``conf/alignment/*.yaml`` with two models)."""
    whole_site: bool = setting(boolean)
    lr: float = setting(positive_number)
    warmup_steps: int = setting(non_negative_int)
    min_lr_ratio: float = setting(fraction)
    max_steps: int = setting(positive_int)
    max_minutes: float | None = setting(optional(positive_number, "null (no budget)"))
    batch_size: int = setting(positive_int)
    accumulate: int = setting(positive_int, default=1)
    """Micro-batches of ``batch_size`` rows per optimizer step: an effective batch of
    ``batch_size * accumulate`` with the memory of ``batch_size``."""
    prefix_cache: bool = setting(boolean, identity=False, default=True)
    """Language models (GPT-2 and Llama families, at ``embedding`` or ``layer.<i>``): each pair's target states
    at the site are computed once and every step runs only the blocks above the site (the same results;
    it pays once training draws each pair more than once, ``max_steps * batch_size > n_train``)."""
    prefix_cache_mb: float = setting(non_negative_number, identity=False, default=2048.0)
    """Cached states beyond this many MB go to memory-mapped files in the run folder (removed at its end)."""
    eval_batch_size: int = setting(positive_int, identity=False)
    val_every: int = setting(positive_int)
    heldout_curve: bool = setting(boolean, identity=False, default=False)
    """Evaluate the held-out pairs at every evaluation too (their learning curve in ``metrics.csv`` and the
    loggers), not only at the end for the records: the same results, at the cost of a second evaluation
    split every ``val_every`` steps (about half the validation time: 5-10% of a default run's)."""
    stop_at: float | None = setting(optional(accuracy, "null (train exactly alignment.max_steps steps)"))
    """Stop once every trained track's validation IIA reaches this, or once mean validation IIA has not
    improved for ``patience`` evaluations; ``None``: neither stop, training runs ``max_steps`` steps (the
    best validation checkpoint is still the one kept)."""
    patience: int = setting(non_negative_int)
    min_delta: float = setting(non_negative_number)
    n_train: int = setting(positive_int)
    n_val: int = setting(positive_int)
    n_heldout: int = setting(positive_int)
    n_test: int = setting(positive_int)
    controls: tuple[str, ...] = setting(control_list, default=())
    """Controls run after the alignment, each one's IIA and divergence reported beside the alignment's
    (:mod:`alignsearch.search.controls`)."""

    def not_identity(self) -> tuple[str, ...]:
        """Settings that change how fast or where a run computes, not its results (left out of a run's
        identity), and settings added later that are at their default (:data:`WHEN_SET`)."""
        return tuple(
            f.name
            for f in dataclasses.fields(self)
            if not f.metadata["identity"]
            or (f.metadata["identity"] == WHEN_SET and getattr(self, f.name) == f.default)
        )

    @classmethod
    def parse(cls, node: Mapping | Any) -> AlignmentSettings:
        return parse(cls, node, "alignment")


def site_layer(key: str, value: Any) -> int | str:
    """A layer of the model: its number, or ``embedding``."""
    if value == "embedding" or (_is_int(value) and value >= 0):
        return value
    raise ConfigError(key, value, "a layer number (0, 1, ...) or embedding", (int, str))


def unit_sizes(key: str, value: Any) -> int | tuple[int, ...]:
    """Units per variable: one size for every variable, or a list with one per variable (the range,
    [1, the sites' width], is checked when the run is planned)."""
    value = plain(value)
    if isinstance(value, list | tuple) and value and all(_is_int(v) for v in value):
        return tuple(value)
    if _is_int(value):
        return value
    raise ConfigError(key, value, "an integer, or a list of integers (one per variable)", INT)


@dataclass(frozen=True, kw_only=True)
class PartnerSettings:
    """The second model of a two-model alignment (``partner`` in ``conf/run_alignment.yaml``); null means
    "as the first model" (the seed: the first model's + 1)."""

    model: str | None = setting(optional(text), default=None)
    """A ``conf/model`` choice (how the command line finds the partner in the zoo)."""
    model_settings: Mapping[str, Any] | None = setting(any_value, default=None)
    """Changes to the partner's model settings (checked when the model is built)."""
    task: str | None = setting(optional(text), default=None)
    seed: int | None = setting(optional(seed_value, "null for seed + 1"), default=None)
    layer: int | str | None = setting(optional(site_layer), default=None)
    site: str | None = setting(optional(text), default=None)
    causal_model: str | None = setting(optional(text), default=None)
    variables: tuple[str | None, ...] | None = setting(optional(variable_list), default=None)

    @classmethod
    def parse(cls, node: Mapping | Any) -> PartnerSettings:
        return parse(cls, node or {}, "partner")


def derived_partner_seed(seed: int) -> int:
    """The partner's seed where ``partner.seed`` is null (the default): the first model's seed + 1, so that
    ``-m seed=1,2,3`` pairs each seed with the next. Such a partner seed is part of the seed: the report
    pools a sweep over ``seed`` whose partners are all derived so
    (:func:`alignsearch.report.fold_partner_seeds`)."""
    return seed + 1


ANY, LAST, MARKER = "any", "last", "marker:"
POSITIONS_ALLOWED = (
    "any (each pair's own position), last, a token index (-2 is the one before the last, 0 the first), "
    "or marker:<text> (the last token of the text's first occurrence) with an optional offset "
    "(marker:<text>:-1, marker:<text>:+2)"
)
_OFFSET = re.compile(r"(.+):([+-]\d+)")


@dataclass(frozen=True)
class Position:
    """Where every prompt (text pairs) or sequence (task pairs) of a pair is intervened on, the same rule
    for the base and the source: a token ``index`` counted from the start (0, 1, ...) or from the end
    (-1: the last token), or the last token of the first occurrence of a ``marker`` text, moved by
    ``offset`` tokens. ``spec`` is how a setting writes it (:func:`position_spec`).

    >>> position_of("marker:. how:-1")
    Position(spec='marker:. how:-1', index=None, marker='. how', offset=-1)
    >>> position_of("last"), position_of("any")
    (Position(spec='last', index=-1, marker=None, offset=0), None)
    """

    spec: str
    index: int | None = None
    marker: str | None = None
    offset: int = 0


def position_spec(key: str, value: Any) -> str:
    """A position as its canonical text: ``any``, ``last`` (also for -1), a token index (``-2``, ``0``), or
    ``marker:<text>`` with an optional signed offset (``marker:?:-1``).

    >>> position_spec("position", -1), position_spec("position", "-2"), position_spec("position", "marker:?:+0")
    ('last', '-2', 'marker:?')
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(key, value, POSITIONS_ALLOWED, (int, str))
    text = str(value).strip()
    if text.lower() in (ANY, LAST):
        return text.lower()
    if re.fullmatch(r"[+-]?\d+", text):
        return LAST if int(text) == -1 else str(int(text))
    if text.startswith(MARKER) and text != MARKER:
        marker, offset = text[len(MARKER) :], 0
        found = _OFFSET.fullmatch(marker)
        if found:
            marker, offset = found.group(1), int(found.group(2))
        return f"{MARKER}{marker}" + (f":{offset:+d}" if offset else "")
    raise ConfigError(key, value, POSITIONS_ALLOWED, (int, str))


def position_of(spec: str | None) -> Position | None:
    """The :class:`Position` a canonical spec names; None for ``any`` (or no spec): each pair's own."""
    if spec is None or spec == ANY:
        return None
    if spec == LAST:
        return Position(spec, index=-1)
    if not spec.startswith(MARKER):
        return Position(spec, index=int(spec))
    marker, offset = spec[len(MARKER) :], 0
    found = _OFFSET.fullmatch(marker)
    if found:
        marker, offset = found.group(1), int(found.group(2))
    return Position(spec, marker=marker, offset=offset)


def run_position(key: str, value: Any) -> str | None:
    """A run's position: null or ``any`` (each pair's own: a text row's fields, or drawn among a task
    sequence's valid positions) as None, else :func:`position_spec`."""
    spec = position_spec(key, value)
    return None if spec == ANY else spec


def distinct_list(rule: Check, what: str) -> Check:
    """A non-empty list of distinct values, each checked by ``rule`` (as its canonical form)."""

    def check(key: str, value: Any) -> tuple:
        value = plain(value)
        if not isinstance(value, list | tuple) or not value:
            raise ConfigError(key, value, f"a non-empty list of {what}", LIST)
        out = []
        for item in value:
            try:
                out.append(rule(key, item))
            except ConfigError as e:
                raise ConfigError(key, item, f"a list of {what}, each {e.allowed}") from None
        repeated = [v for i, v in enumerate(out) if v in out[:i]]
        if repeated:
            raise ConfigError(key, value, f"a list of distinct {what} ({repeated[0]} is there twice)", LIST)
        return tuple(out)

    return check


SCAN_SHOWN = ("iia", "selectivity")
"""What a scan's heatmap can show (``scan.show``)."""


@dataclass(frozen=True, kw_only=True)
class ScanSettings:
    """Where does the variable live? A short alignment at every site x position (``conf/scan.yaml``,
    ``python -m alignsearch.scan``; :mod:`alignsearch.search.scan`)."""

    sites: tuple[str, ...] | None = setting(
        optional(distinct_list(text, "sites"), "null (embedding and every layer.<i>)"), default=None
    )
    """Sites by name or module path; None: the model's residual stream, ``embedding`` and each ``layer.<i>``."""
    positions: tuple[str, ...] | None = setting(
        optional(
            distinct_list(position_spec, "positions"),
            "null (text: [last, -2, -3]; task models: [any])",
        ),
        default=None,
    )
    """Where every prompt of a pair is intervened on (:class:`Position`); None: the last three tokens of
    each prompt (text), each pair's own positions (task models)."""
    steps: int = setting(positive_int, default=50)
    """Training steps of each cell's alignment (``alignment.max_steps`` of the cell)."""
    controls: tuple[str, ...] = setting(control_list, default=("random_subspace",))
    """The controls of each cell (``alignment.controls`` of the cell): the random subspace costs an
    evaluation only."""
    then_align: bool = setting(boolean, default=False)
    """Then run the full alignment (the run's own alignment settings) at the best cell, in ``best/``."""
    top: int = setting(positive_int, default=3)
    """How many of the best cells the scan prints."""
    controls_top: int = setting(non_negative_int, default=3)
    """After every cell has run, the trained controls (:attr:`top_controls`) are trained at this many of
    the best cells by IIA (one per site x position), with the cells' steps; 0: none (each cell has only
    :attr:`controls`, and the scan ranks by IIA)."""
    top_controls: tuple[str, ...] = setting(control_list, default=("shuffled", "untrained"))
    """The controls trained at the :attr:`controls_top` best cells: a cell with a score of one of them is
    *controlled* and has a selectivity, its IIA minus the best (highest) of its controls."""
    show: str | None = setting(
        optional(one_of(*SCAN_SHOWN), "null (selectivity where trained controls ran, else iia)"), default=None
    )
    """What ``scan.png`` shows: ``iia``, or ``selectivity`` (cells without a trained control drawn blank,
    marked not controlled); None: selectivity where trained controls ran, else IIA."""

    @classmethod
    def parse(cls, node: Mapping | Any) -> ScanSettings:
        return parse(cls, node or {}, "scan")

    def check(self) -> None:
        if self.show == "selectivity" and not self.trains_controls():
            raise ConfigError(
                "scan.show",
                self.show,
                "iia or null: no cell has a trained control (scan.controls_top=0 or scan.top_controls=[])",
            )

    def trains_controls(self) -> bool:
        """Whether the scan trains :attr:`top_controls` at its best cells."""
        return self.controls_top > 0 and bool(self.top_controls)


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """What one alignment run aligns, besides how (:class:`AlignmentSettings`): the seed, the site and the
    units per variable, the training snapshot, the partner, and the task accuracy a zoo model must have
    reached (top-level keys of ``conf/run_alignment.yaml``: ``seed``, ``alignment_seed``, ``layer``,
    ``site``, ``n_units``, ``snapshot``, ``partner``, ``position``, ``min_task_accuracy``)."""

    seed: int = setting(seed_value)
    alignment_seed: int | None = setting(optional(seed_value, "null (the seed)"), default=None)
    """The alignment's own seed where it is not the model's: its pairs, its initial rotation and its
    controls are drawn from it, the model is still the zoo's of ``seed``. None: ``seed`` (one run per
    model). Several alignment seeds of one model tell a run's spread from a model's
    (``+experiment=findings_divergence``)."""
    layer: int | str = setting(site_layer)
    site: str | None = setting(optional(text, "null (layer names the site)"), default=None)
    n_units: int | tuple[int, ...] = setting(unit_sizes)
    snapshot: int | None = setting(
        optional(positive_int, "null (the final weights), or a training step kept in the zoo entry"),
        default=None,
    )
    partner: PartnerSettings = setting(any_value, default=PartnerSettings())
    position: str | None = setting(optional(run_position, f"null ({ANY})"), default=None)
    """Where every prompt or sequence of a pair is intervened on (:class:`Position`, as its spec); None:
    each pair's own position."""
    min_task_accuracy: float = setting(fraction, identity=False, default=0.95)
    """The validation trial accuracy a task model trained by the zoo must have reached to be aligned (its
    entry's ``metrics.json``; :func:`alignsearch.search.planning.check_task_accuracy`): a model below it
    is refused before any work, naming this setting (0: align any). A variable found, or not found, in a
    model that fails the task says little about how the task is solved. Not part of a run's identity (it
    changes which runs start, not their results); models brought from Python and language models are
    not held to it, nor a ``snapshot`` (early weights, aligned on purpose)."""

    KEYS = (
        "seed", "alignment_seed", "layer", "site", "n_units", "snapshot", "partner", "position",
        "min_task_accuracy",
    )  # fmt: skip

    @classmethod
    def parse(cls, node: Mapping | Any) -> RunSettings:
        """The run settings among the top-level keys of a composed ``run_alignment`` config."""
        picked = {k: plain(node[k]) for k in cls.KEYS if k in node}  # only these keys are resolved
        picked["partner"] = PartnerSettings.parse(picked.get("partner"))
        return parse(cls, picked, "")

    def site_name(self) -> str:
        """The site: ``site`` if given (a site name or a module path), else ``layer`` as a site name
        (``0`` -> ``layer.0``; ``embedding`` stays)."""
        return site_name(self.layer, self.site)

    def partner_site_name(self) -> str:
        """The partner's site: its own layer or site if given, else the first model's."""
        if self.partner.site is not None:
            return self.partner.site
        if self.partner.layer is not None:
            return site_name(self.partner.layer)
        return self.site_name()

    def partner_seed(self) -> int:
        """``partner.seed``, or where it is null the one derived from ``seed``
        (:func:`derived_partner_seed`)."""
        return derived_partner_seed(self.seed) if self.partner.seed is None else self.partner.seed

    def identity(self) -> dict[str, Any]:
        """The settings that change a run's results, as plain values (``position`` and ``alignment_seed``
        only where set: runs from before they existed keep their identity; never ``min_task_accuracy``)."""
        values = plain_dataclass(self)
        for f in dataclasses.fields(self):
            if not f.metadata["identity"]:
                del values[f.name]
        for optional_key in ("position", "alignment_seed"):  # runs from before they existed keep theirs
            if values[optional_key] is None:
                del values[optional_key]
        return values

    def run_seed(self) -> int:
        """The seed the alignment draws its pairs, initial weights and controls from: ``alignment_seed``,
        or where it is null ``seed``."""
        return self.seed if self.alignment_seed is None else self.alignment_seed

    def where(self) -> Position | None:
        """The run's :class:`Position` (None: each pair's own)."""
        return position_of(self.position)


def site_name(layer: int | str | None, site: str | None = None) -> str:
    """A run's site: ``site`` if given, else ``layer`` as a site name.

    >>> site_name(0), site_name("embedding"), site_name(1, "blocks.1")
    ('layer.0', 'embedding', 'blocks.1')
    """
    if site:
        return str(site)
    return "embedding" if str(layer) == "embedding" else f"layer.{layer}"


def plain_dataclass(instance: Any) -> dict[str, Any]:
    """A (nested) settings dataclass as plain JSON-able values."""
    return json_ready(dataclasses.asdict(instance))


def json_ready(value: Any) -> Any:
    """Tuples as lists, recursively (what ``json`` writes back)."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def _load_training_defaults() -> dict[str, Any]:
    from alignsearch.components import CONF_DIR

    return plain(OmegaConf.load(CONF_DIR / "training" / "default.yaml"))


TRAINING_DEFAULTS: dict[str, Any] = _load_training_defaults()
"""The shipped training settings (``conf/training/default.yaml``): what an unsuffixed zoo name means."""
