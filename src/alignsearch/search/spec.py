"""What an alignment run is given (:class:`RunModel`) and what it will do (:class:`AlignmentPlan`: its
models, the layout's block sizes, the directions trained and the typed alignment settings), planned by
:mod:`alignsearch.search.planning` for the command line and the Python API alike.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from hydra.utils import get_class

from alignsearch.alignment import NULL, Interchange
from alignsearch.components import instantiate_checked
from alignsearch.models import SequenceModel
from alignsearch.search.pairs import Track
from alignsearch.seeding import derive_seed
from alignsearch.settings import AlignmentSettings, Position
from alignsearch.tasks import CausalModel


@dataclass
class RunModel:
    """One model an alignment run is given, as the run names and controls it.

    The command line makes these from zoo entries or language-model folders, the Python API from
    whatever it is handed (a zoo entry, a model in memory); the run treats them alike.
    """

    model: SequenceModel
    name: str
    """How records name it: ``multiobject/gru/seed0``, ``lm_gpt2``."""
    task: Any | None
    """The task it reads (None for a language model on text)."""
    weights_sha256: str
    """What identifies its weights: a run's results belong to these weights."""
    labels: dict[str, Any] = field(default_factory=dict)
    """The flat config keys that name it (``task``, ``model``, ``seed``, ``model.d_model``, ...); a
    partner's are written with ``partner_`` in front."""
    untrained: Callable[[int], SequenceModel] | None = None
    """The ``untrained`` control's model, given the run's seed: the same architecture, untrained (None:
    the model has none, and that control is refused)."""
    definition_sha256: str | None = None
    """For a model brought from Python, what defines it besides its weights: its whole state, its classes'
    code and its attributes (:func:`alignsearch.models.definition.definition_sha256`); None for a zoo
    entry or a language model folder, named by their files."""
    training_metrics: Mapping[str, Any] | None = None
    """What training a zoo model measured (its entry's ``metrics.json``: ``val_trial_acc``, ``steps``, ...),
    held to ``min_task_accuracy`` (:func:`alignsearch.search.planning.check_task_accuracy`); None for a
    model the zoo did not train (brought from Python, a language model) or not yet trained."""

    def identity(self) -> dict[str, str]:
        """What a run's results belong to (``definition_sha256`` only where there is one: the identity of
        zoo models stays as their results recorded it)."""
        identity = {"name": self.name, "weights_sha256": self.weights_sha256}
        if self.definition_sha256 is not None:
            identity["definition_sha256"] = self.definition_sha256
        return identity


@dataclass
class Member:
    """One model of an alignment: its name, task, site, causal model and variables (by position).

    A language model aligned on text has no task or causal model: its pairs come from the plan's
    ``data`` (:mod:`alignsearch.search.text_data`), and its one variable is named by that data."""

    name: str
    task: Any
    site: str
    width: int
    causal_model: CausalModel | None
    variables: list[str]


@dataclass
class AlignmentPlan:
    """Everything an alignment run needs, checked before any work."""

    members: list[Member]
    sizes: list[int]
    directions: list[tuple[int, int]]
    cl_directions: list[tuple[int, int]]
    settings: AlignmentSettings
    data: PlanPairs | None = None
    """Where the pairs come from when they are not the tasks' (text pairs, a corpus)."""
    seed: int = 0
    """The seed its alignment functions are initialised from (:meth:`take_interchange`)."""
    position: Position | None = None
    """Where task pairs intervene (None: drawn among each sequence's valid positions); text pairs come
    repositioned in ``data``."""
    _built: tuple[Interchange, torch.Tensor] | None = field(default=None, repr=False, compare=False)

    @property
    def variables(self) -> list[str]:
        """The layout's block names: model 0's variables."""
        return self.members[0].variables

    @property
    def named_variables(self) -> list[str]:
        return [v for v in self.variables if v != NULL]

    def tracks(self) -> list[Track]:
        """Every (source, target, variable), with the losses that train it: behaviour on ``directions``,
        the counterfactual-latent loss on ``cl_directions`` (weight ``cl_eps``) and on every behavioural
        direction when ``cl_weight`` is above 0 (weight ``cl_weight``)."""
        a = self.settings
        tracks = []
        for s, t in itertools.product(range(len(self.members)), repeat=2):
            behavioural, listed = (s, t) in self.directions, (s, t) in self.cl_directions
            latent = listed or (behavioural and a.cl_weight > 0)
            weight = a.cl_eps if listed else a.cl_weight
            tracks += [
                Track(
                    s, t, v, behavioural=behavioural, latent=latent, latent_weight=weight if latent else 1.0
                )
                for v in self.variables
            ]
        return tracks

    def plan_interchange(self) -> None:
        """Build the interchange once, as training starts it (seeded from :attr:`seed`): building checks
        the function and the layout (total size, room for null), and the run trains this one."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed(self.seed))
            interchange = self.build_interchange()
            self._built = (interchange, torch.random.get_rng_state())

    def take_interchange(self, seed: int) -> Interchange:
        """The alignment functions to train from ``seed``: those planned (once), else newly built; torch's
        random state is left as building them from ``seed`` leaves it."""
        torch.manual_seed(init_seed(seed))
        if self._built is not None and seed == self.seed:
            (interchange, state), self._built = self._built, None
            torch.random.set_rng_state(state)
            return interchange
        return self.build_interchange()

    def build_interchange(self) -> Interchange:
        a = self.settings
        return interchange_of(
            a.function, a.layout, [m.width for m in self.members], self.variables, self.sizes,
            keep_target=a.keep_target, match_scales=a.match_scales,
        )  # fmt: skip


@dataclass
class RunData:
    """Pairs that do not come from the models' tasks (text pairs, a corpus), and how a run records them.

    ``identity`` names the data in the run's identity (``{"data_sha256": ...}``: a file's digest, or the
    pairs' own); ``settings``, how it was read (part of the run's settings digest); ``summary`` is what
    ``results.json`` says of it (rows, pairs per split, rows skipped); ``label`` is what the flat config
    calls it (a file's path, or ``python rows``)."""

    source: PairSource
    identity: dict[str, Any]
    summary: dict[str, Any]
    label: str
    settings: dict[str, Any] = field(default_factory=dict)


def init_seed(seed: int) -> int:
    """The torch seed the alignment functions of a run of ``seed`` are initialised from."""
    return derive_seed(seed, "alignment-init") % 2**31


class PlanPairs(Protocol):
    """Where a plan's pairs come from when not from the models' tasks (:attr:`AlignmentPlan.data`): a
    :class:`PairSource`, or a control's variation of one (:mod:`alignsearch.search.controls`)."""

    def eval_splits(self) -> list[str]:
        """The evaluation splits it has (``val`` first, then e.g. ``test``)."""

    def build(self, tracks: list[Track], models: list, sites: list[str], seed: int) -> tuple:
        """Training pairs per track, evaluation pairs per split and track, and the tracks."""


class PairSource(PlanPairs, Protocol):
    """Pairs that do not come from a task and its causal model (:mod:`alignsearch.search.text_data`)."""

    @property
    def kind(self) -> str:
        """What ``data=`` calls it (``pairs``, ``corpus``)."""

    @property
    def variable(self) -> str:
        """The aligned variable's name in the records."""

    @property
    def stepwise(self) -> bool:
        """Whether a pair swaps at every position (the models' own runs on one text), not at one."""

    @property
    def has_natural_targets(self) -> bool:
        """Whether the counterfactual-latent loss has natural targets in these pairs (for some pairs at
        least); where it has none, ``no_natural_targets`` says why, in a phrase."""

    @property
    def no_natural_targets(self) -> str:
        """Why the counterfactual-latent loss has no natural targets here (where it has none)."""


@dataclass(frozen=True)
class Builder:
    """How the nodes of an interchange become objects: ``function_class`` gives the class an alignment
    function's node names (nothing is built), ``build(node, kind, given)`` builds a node (``kind``:
    ``function`` or ``layout``) with the arguments the run gives it (``width``, ``sizes``, ...)."""

    function_class: Callable[[Mapping], type]
    build: Callable[[Mapping, str, dict[str, Any]], Any]


CONFIGURED = Builder(
    function_class=lambda node: get_class(node["_target_"]),
    build=lambda node, kind, given: instantiate_checked(
        node, "alignment.function" if kind == "function" else None, **given
    ),
)
"""The user's own composed config (``alignment.function``, ``alignment.layout``): Hydra's instantiate.
A file's nodes are built by :func:`alignsearch.components.from_data` instead
(:mod:`alignsearch.search.saved`)."""


def interchange_of(
    function: Mapping,
    layout: Mapping,
    widths: list[int],
    variables: list[str],
    sizes: list[int],
    *,
    keep_target: bool,
    match_scales: bool,
    builder: Builder = CONFIGURED,
) -> Interchange:
    """The interchange of an alignment: a ``function`` per model (one per site width in ``widths``) and
    the ``layout`` of ``variables`` in blocks of ``sizes``, built by ``builder``. A run builds it from its
    settings, a saved alignment from its file: both here, so that the two cannot differ."""
    functions = [build_function(function, width, sum(sizes), builder) for width in widths]
    built = builder.build(
        layout,
        "layout",
        {
            "variables": variables,
            "sizes": sizes,
            "code_width": max(f.code_width for f in functions),
            "n_aligned": min(f.n_aligned for f in functions),
        },
    )
    return Interchange(functions, built, keep_target=keep_target, match_scales=match_scales)


def build_function(node: Mapping, width: int, total_units: int, builder: Builder = CONFIGURED):
    """An alignment function for a site of ``width``; low-rank functions get ``rank = total_units`` where
    the node gives none."""
    given: dict[str, Any] = {"width": width}
    if (
        "rank" in inspect.signature(builder.function_class(node).__init__).parameters  # type: ignore[misc]
        and node.get("rank") is None
    ):
        given["rank"] = total_units
        node = {k: v for k, v in node.items() if k != "rank"}
    return builder.build(node, "function", given)
