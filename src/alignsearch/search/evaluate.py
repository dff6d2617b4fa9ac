"""The IIA of a trained alignment on new pairs (``api.iia``): the pairs and the models checked against the
alignment (a one-line ConfigError for anything that does not fit, before anything runs), then one
evaluation pass of the alignment's interchange, for one direction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from alignsearch.call_checks import check_pairs_fit
from alignsearch.errors import ConfigError
from alignsearch.search.saved import SavedAlignment
from alignsearch.search.spec import RunModel
from alignsearch.search.text_data import TextPairSource
from alignsearch.tasks.counterfactual import CounterfactualPairs
from alignsearch.text.pairs import TextPairs


class Scores(dict):
    """What :func:`iia` gives: a dict of ``iia``, ``token_iia`` and ``iia_by_position`` (the IIA of the
    pairs intervened at each base position, ``{"5": 0.9, ...}``), printed short: the scores to 4 digits
    and the positions as their number (``scores["iia_by_position"]`` holds them).

    >>> Scores({"iia": 0.05, "token_iia": 0.63751, "iia_by_position": {"3": 0.1, "4": 0.0}})
    {'iia': 0.05, 'token_iia': 0.6375, 'iia_by_position': {...2 positions}}
    """

    def __repr__(self) -> str:
        def short(value: Any) -> str:
            if isinstance(value, Mapping):
                return f"{{...{len(value)} positions}}"
            return repr(round(value, 4)) if isinstance(value, float) else repr(value)

        return "{" + ", ".join(f"{key!r}: {short(value)}" for key, value in self.items()) + "}"


def evaluate_saved(
    saved: SavedAlignment,
    run_models: Sequence[RunModel],
    pairs: CounterfactualPairs | TextPairs,
    *,
    source: int,
    target: int,
    variable: str | None,
) -> Scores:
    """IIA, token IIA and IIA by position of ``saved`` on ``pairs`` for the direction ``source`` ->
    ``target`` (indices into ``run_models``, which stand where the alignment's models stood), for
    ``variable`` (None: the alignment's first for text pairs, the variable counterfactual pairs swap).

    The pairs must be of the target's task (text pairs: ids its tokenizer has), and counterfactual pairs
    of the causal model, variable and task settings the alignment and the models have
    (:func:`alignsearch.call_checks.check_pairs_fit`); the models must have the alignment's widths at its
    sites (:func:`check_fit`). A one-line ConfigError otherwise, before anything runs."""
    from alignsearch.search.module import AlignmentModule
    from alignsearch.search.pairs import Track, pair_tensors

    text = isinstance(pairs, TextPairs)
    check_pairs(pairs, run_models[target], run_models[source])
    if text:
        variable = variable or saved.variables[0]
    else:  # the causal model, variable and task settings the pairs were made for: the alignment's and models'
        models_of = (run_models[target], run_models[source])
        variable = check_pairs_fit(saved.config, saved.variables, pairs, *models_of, target, source, variable)
    check_fit(saved, run_models, source, target, variable)
    modules = [m.model for m in run_models]
    track = Track(source, target, variable)
    module = AlignmentModule(
        modules,
        saved.sites,
        saved.interchange,
        [track],
        eval_splits=(),
        stepwise=getattr(pairs, "stepwise", False),
    )
    if isinstance(pairs, TextPairs):
        tensors = TextPairSource.tensors(pairs, modules[source], saved.sites[source])
    else:
        tensors = pair_tensors(pairs, modules[source], saved.sites[source])
    return Scores(module.evaluate({track.name: tensors})[track.name])


def check_pairs(pairs: CounterfactualPairs | TextPairs, target: RunModel, source: RunModel) -> None:
    """A ConfigError unless the pairs are of the target's task (or, for text, its tokenizer's ids), and
    there is at least one."""
    from alignsearch.models.vocabulary import check_ids_in_vocab

    if len(pairs) == 0:
        raise ConfigError("pairs", 0, "at least one pair").as_argument("pairs")
    if isinstance(pairs, TextPairs):
        if target.task is not None:
            raise ConfigError(
                "pairs", "text pairs", f"pairs of task {target.task.name} for {target.name} (api.pairs)"
            ).as_argument("pairs")
        for model in (target, source):
            check_ids_in_vocab(pairs.ids, getattr(model.model, "vocab_size", None), "pairs")
        return
    if target.task is None:
        raise ConfigError(
            "pairs", f"pairs of task {getattr(pairs.task, 'name', '?')}", f"text pairs for {target.name}"
        ).as_argument("pairs")
    task = pairs.task
    if task is not None and (
        task.name != target.task.name or tuple(task.vocab.tokens) != tuple(target.task.vocab.tokens)
    ):
        raise ConfigError(
            "pairs",
            f"pairs of task {task.name} ({' '.join(task.vocab.tokens)})",
            f"pairs of task {target.task.name} ({' '.join(target.task.vocab.tokens)}), the task of {target.name}",
        ).as_argument("pairs")
    check_ids_in_vocab(pairs.ids, target.task.vocab.size, "pairs")
    if source.task is not None:
        check_ids_in_vocab(pairs.source.ids, source.task.vocab.size, "pairs")


def check_fit(
    saved: SavedAlignment, models: Sequence[RunModel], source: int, target: int, variable: str
) -> None:
    """A ConfigError unless ``models`` can stand where the alignment's models stood, and the variable is
    the alignment's."""
    from alignsearch.models import hooks

    trained_on = ", ".join(saved.models)
    if len(models) != len(saved.models):
        raise ConfigError("models", len(models), f"{len(saved.models)} model(s), as trained ({trained_on})")
    for i, (model, site, width) in enumerate(zip(models, saved.sites, saved.widths, strict=True)):
        has = hooks.site_width(model.model, site)
        if has != width:
            raise ConfigError(
                f"models[{i}]",
                model.name,
                f"a model of width {width} at {site}, as {saved.models[i]}: it has {has}",
            )
    if variable not in saved.variables:
        raise ConfigError(
            "variable", variable, f"one of the alignment's variables: {', '.join(saved.variables)}"
        )
