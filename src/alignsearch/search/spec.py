"""What an alignment run will do: its models (members), the layout's block sizes, the directions trained
and the typed alignment settings. Built from a composed config by :mod:`alignsearch.cli.plan`, or
directly by a Python caller.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from hydra.utils import get_class

from alignsearch.alignment import NULL, Interchange
from alignsearch.components import instantiate_checked
from alignsearch.search.pairs import Track
from alignsearch.settings import AlignmentSettings
from alignsearch.tasks import CausalModel


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
    data: PairSource | None = None
    """Where the pairs come from when they are not the tasks' (text pairs, a corpus)."""

    @property
    def variables(self) -> list[str]:
        """The layout's block names: model 0's variables."""
        return self.members[0].variables

    @property
    def named_variables(self) -> list[str]:
        return [v for v in self.variables if v != NULL]

    def tracks(self) -> list[Track]:
        """Every (source, target, variable), with the losses that train it."""
        pairs = itertools.product(range(len(self.members)), repeat=2)
        return [
            Track(s, t, v, behavioural=(s, t) in self.directions, latent=(s, t) in self.cl_directions)
            for s, t in pairs
            for v in self.variables
        ]

    def build_interchange(self) -> Interchange:
        functions = [build_function(self.settings.function, m.width, sum(self.sizes)) for m in self.members]
        layout = instantiate_checked(
            self.settings.layout,
            None,
            variables=self.variables,
            sizes=self.sizes,
            code_width=max(f.code_width for f in functions),
            n_aligned=min(f.n_aligned for f in functions),
        )
        return Interchange(functions, layout, keep_target=self.settings.keep_target)


class PairSource(Protocol):
    """Pairs that do not come from a task and its causal model (:mod:`alignsearch.search.text_data`)."""

    def eval_splits(self) -> list[str]:
        """The evaluation splits it has (``val`` first, then e.g. ``test``)."""

    def build(self, tracks: list[Track], models: list, sites: list[str], seed: int) -> tuple:
        """Training pairs per track, evaluation pairs per split and track, and the tracks."""


def build_function(node: Mapping, width: int, total_units: int):
    """An alignment function for a site of ``width``; low-rank functions get ``rank = total_units``."""
    extra: dict[str, Any] = {"width": width}
    if (
        "rank" in inspect.signature(get_class(node["_target_"]).__init__).parameters
        and node.get("rank") is None
    ):
        extra["rank"] = total_units
    return instantiate_checked(node, "alignment.function", **extra)
