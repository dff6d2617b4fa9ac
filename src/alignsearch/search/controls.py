"""Controls: what an IIA is worth, measured beside it in the same run (``alignment.controls``).

Which controls exist, what each needs and what the report says of it is the registry of
:mod:`alignsearch.controls` (a new one is a registered :class:`~alignsearch.controls.Control` class);
this module runs them: :func:`run_controls` hands each named control a :class:`ControlRun`, the run's plan,
models and folder with the tools the controls are made of. The built-in ones:

* ``untrained``: the same alignment, trained the same way, on freshly initialised copies of the models
  (same architecture, settings and seed, no training). An untrained task model cannot do the task, so
  its IIA is near 0 by construction; a language model on text pairs scores about chance over the answers
  (the alignment alone can still move the argmax among them). It shows that the trained weights matter,
  not how selective the alignment is. The two below are the informative ones.
* ``random_subspace``: the IIA of the alignment functions as initialised (a random rotation: random
  subspaces of the same sizes), not trained, averaged over :data:`RANDOM_DRAWS` draws.
* ``shuffled``: the alignment trained (and evaluated) on pairs whose source vectors are shuffled across
  pairs, so that the counterfactual targets no longer follow from what is swapped in: what a rotation can
  fit without a variable (a control task in the sense of probing).

Each control gives, per track (source, target, variable), a :class:`ControlScore` on the validation pairs:
its IIA and its ``divergence`` at the site (the record's own measure, :mod:`alignsearch.search.divergence`,
of the control's interventions: how far off the natural states they push the target). ``random_subspace``
averages both over its draws; ``untrained`` and ``shuffled`` take them from their trained alignment's
records. The records of the run get ``iia_control_<name>`` beside ``iia``, each followed by
``divergence_control_<name>`` (:attr:`AlignmentRecord.control_divergence`, ``control divergence: <name>``
in the tables); the report adds a selectivity, IIA minus the best control, and shows each control's
divergence beside the record's ``divergence`` and its floor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch

from alignsearch.alignment.interchange import Interchange
from alignsearch.controls import CONTROLS, control_names
from alignsearch.engine.accelerator import compute_device
from alignsearch.errors import ConfigError
from alignsearch.intervals import wilson
from alignsearch.models import SequenceModel
from alignsearch.search.fit import build_pairs, fit_alignment, standardized
from alignsearch.search.module import AlignmentModule
from alignsearch.search.pairs import PairBatch, Track
from alignsearch.search.records import AlignmentRecord, ControlScore
from alignsearch.search.spec import AlignmentPlan
from alignsearch.seeding import derive_seed, generator
from alignsearch.settings import HardwareSettings

RANDOM_DRAWS = 3
"""Random rotations averaged by the ``random_subspace`` control."""
SHUFFLED_KEYS = ("src", "cl", "cl_found")
"""What a shuffled pair takes from another pair: the swapped-in vector (and its latent target)."""

Scores = dict[str, ControlScore]
"""Validation IIA and divergence per track name (``"0>1/count"``)."""


@dataclasses.dataclass
class ShuffledPairs:
    """The pairs of ``plan``, each split's source vectors permuted across its pairs (seeded)."""

    plan: AlignmentPlan

    def eval_splits(self) -> list[str]:
        return self.plan.data.eval_splits() if self.plan.data is not None else []

    def build(self, tracks: list[Track], models: list, sites: list[str], seed: int) -> tuple:
        train, evals, tracks = build_pairs(self.plan, models, seed)
        train = {name: shuffled(batch, seed, "train", name) for name, batch in train.items()}
        evals = {
            split: {name: shuffled(batch, seed, split, name) for name, batch in per.items()}
            for split, per in evals.items()
        }
        return train, evals, tracks


def shuffled(batch: PairBatch, seed: int, split: str, track: str) -> PairBatch:
    """``batch`` with its source vectors (and latent targets) given to other rows."""
    order = torch.randperm(len(batch["ids"]), generator=generator(seed, "shuffled-control", split, track))
    return {k: v[order] if k in SHUFFLED_KEYS else v for k, v in batch.items()}


def random_subspace_scores(
    plan: AlignmentPlan,
    models: list[SequenceModel],
    seed: int,
    hardware: HardwareSettings,
    draws: int = RANDOM_DRAWS,
) -> Scores:
    """Validation IIA and divergence of untrained alignment functions, each the mean over ``draws`` draws
    (computed where training runs; the divergence None where a draw has none)."""
    device = compute_device(hardware)
    for model in models:
        model.to(device)
    train, evals, tracks = build_pairs(plan, models, seed)
    scored: dict[str, list[dict]] = {}
    for draw in range(draws):
        L.seed_everything(derive_seed(seed, "random-subspace", draw) % 2**31, verbose=False)
        module = AlignmentModule(
            models, [m.site for m in plan.members], standardized(plan.build_interchange(), train, tracks), tracks,
            eval_splits=(), stepwise=plan.settings.stepwise,
        )  # fmt: skip
        evaluated = module.to(device).evaluate(
            evals["val"], plan.settings.eval_batch_size, divergence=True, intervals=("iia",)
        )
        for name, metrics in evaluated.items():
            scored.setdefault(name, []).append(metrics)
    for model in models:
        model.cpu()
    return {name: pooled_draws(per) for name, per in scored.items()}


def pooled_draws(draws: list[dict]) -> ControlScore:
    """One track's score over several draws evaluated on the same pairs: the mean IIA (the share of all
    the draws' interventions right) with its Wilson interval over them, and the mean divergence.

    >>> pooled_draws([{"iia": 0.1, "n_pairs": 50, "divergence": 0.2}, {"iia": 0.3, "n_pairs": 50, "divergence": 0.4}])
    ControlScore(iia=0.2, divergence=0.30000000000000004, trials=100, low=0.133367, high=0.288829)
    """
    iia = sum(m["iia"] for m in draws) / len(draws)
    divergence = mean([m.get("divergence") for m in draws])
    counts: list[int] = [m["n_pairs"] for m in draws if m.get("n_pairs") is not None]
    if len(counts) < len(draws):
        return ControlScore(iia, divergence)
    trials = sum(counts)
    hits = round(sum(m["iia"] * n for m, n in zip(draws, counts, strict=True)))
    low, high = wilson(hits, trials)
    return ControlScore(iia, divergence, trials, low, high)


def mean(values: list[float | None]) -> float | None:
    """The mean of ``values``; None where any is None (not measured).

    >>> mean([0.1, 0.3]), mean([0.1, None])
    (0.2, None)
    """
    measured = [v for v in values if v is not None]
    return None if len(measured) < len(values) else sum(measured) / len(measured)


def trained_scores(
    plan: AlignmentPlan, models: list[SequenceModel], out_dir: Path, *, seed: int, hardware: HardwareSettings
) -> Scores:
    """Validation IIA and divergence of an alignment trained (and resumable) in ``out_dir``: its records'."""
    return scores_of(fit_alignment(plan, models, out_dir, seed=seed, hardware=hardware).records)


def scores_of(records: list[AlignmentRecord]) -> Scores:
    """Each record's validation IIA and divergence, by track name."""
    return {r.name: ControlScore(r.iia, r.divergence, r.n_pairs, r.iia_low, r.iia_high) for r in records}


@dataclasses.dataclass
class ControlRun:
    """What a control's :meth:`~alignsearch.controls.Control.run` is handed: the run's plan, models (as the
    run has them: frozen, trained), seed, hardware and this control's own folder, and the tools the
    built-in controls are made of. Each tool gives ``{track name: ControlScore}`` (validation IIA and
    divergence), the run's records' form, or what such a score is measured on."""

    name: str
    """The control's name."""
    plan: AlignmentPlan
    models: list[SequenceModel]
    seed: int
    hardware: HardwareSettings
    folder: Path
    """``<run folder>/controls/<name>``: where an alignment the control trains keeps its checkpoints."""
    untrained: Callable[[], list[SequenceModel]] | None = None
    trained: dict | None = None
    """The run's kept alignment (its interchange's state dict)."""

    def untrained_models(self) -> list[SequenceModel]:
        """Freshly initialised copies of the models (same architecture, settings and seed)."""
        if self.untrained is None:
            raise ConfigError("alignment.controls", self.name, "a run whose models have an untrained form")
        return self.untrained()

    def shuffled_plan(self) -> AlignmentPlan:
        """The run's plan with its pairs' source vectors shuffled across pairs (:class:`ShuffledPairs`)."""
        return dataclasses.replace(self.plan, data=ShuffledPairs(self.plan))

    def train(
        self, *, plan: AlignmentPlan | None = None, models: list[SequenceModel] | None = None
    ) -> Scores:
        """Train the run's alignment afresh (on ``plan``'s pairs and ``models``; the run's by default) in
        :attr:`folder` (resumable), and score it: :func:`trained_scores`."""
        return trained_scores(
            plan or self.plan, models if models is not None else self.models, self.folder,
            seed=self.seed, hardware=self.hardware,
        )  # fmt: skip

    def random_alignments(self, draws: int = RANDOM_DRAWS) -> Scores:
        """The alignment functions as initialised, not trained, averaged over ``draws`` draws:
        :func:`random_subspace_scores`."""
        return random_subspace_scores(self.plan, self.models, self.seed, self.hardware, draws=draws)

    def trained_alignment(self) -> Interchange:
        """A copy of the run's kept alignment (an :class:`Interchange`: change it at will)."""
        if self.trained is None:
            raise ConfigError("alignment.controls", self.name, "a run that hands its controls its alignment")
        interchange = self.plan.build_interchange()
        interchange.load_state_dict(self.trained)
        return interchange

    def evaluate(
        self,
        interchange: Interchange,
        *,
        plan: AlignmentPlan | None = None,
        models: list[SequenceModel] | None = None,
    ) -> Scores:
        """Validation IIA and divergence of ``interchange`` as it is (not trained; its standardizers as
        they are) on ``plan``'s pairs and ``models`` (the run's by default)."""
        plan, models = plan or self.plan, models if models is not None else self.models
        device = compute_device(self.hardware)
        for model in models:
            model.to(device)
        try:
            _, evals, tracks = build_pairs(plan, models, self.seed)
            module = AlignmentModule(
                models, [m.site for m in plan.members], interchange, tracks, eval_splits=(),
                stepwise=plan.settings.stepwise,
            )  # fmt: skip
            evaluated = module.to(device).evaluate(
                evals["val"], plan.settings.eval_batch_size, divergence=True, intervals=("iia",)
            )
        finally:
            for model in models:
                model.cpu()
        return {
            name: ControlScore(
                m["iia"], m["divergence"], m.get("n_pairs"), m.get("iia_low"), m.get("iia_high")
            )
            for name, m in evaluated.items()
        }


def check_controls(names: tuple[str, ...] | list[str], key: str = "alignment.controls") -> None:
    """A ConfigError for a name no control is registered under (the settings check it when read; a
    control unregistered since is refused here rather than another one run)."""
    for name in names:
        if name not in CONTROLS:
            raise ConfigError(
                key, list(names), f"a list of distinct controls from {', '.join(control_names())}"
            )


def run_controls(
    plan: AlignmentPlan,
    models: list[SequenceModel],
    names: tuple[str, ...],
    out_dir: Path,
    *,
    seed: int,
    hardware: HardwareSettings,
    untrained: Callable[[], list[SequenceModel]] | None = None,
    trained: dict | None = None,
    verbose: bool = True,
) -> dict[str, Scores]:
    """Every control in ``names`` (registered: :data:`alignsearch.controls.CONTROLS`): ``{control: {track
    name: ControlScore}}`` (validation IIA and divergence, for :meth:`AlignmentRecord.with_controls`); the
    trained ones keep their checkpoints in ``out_dir/controls/<name>/`` (so an interrupted run resumes them
    too). ``untrained`` makes the models' untrained copies, ``trained`` is the run's kept alignment (its
    interchange's state dict); ``verbose``: a line as each starts."""
    check_controls(names)
    scores: dict[str, Scores] = {}
    for name in names:
        if verbose:
            print(f"control: {name}", flush=True)
        run = ControlRun(name, plan, models, seed, hardware, out_dir / "controls" / name, untrained, trained)
        scores[name] = CONTROLS[name]().run(run)
    return scores
