"""From typed settings and the models to an alignment plan: every setting checked against the tasks, the
models and the data, errors keyed by the command line's keys (``layer``, ``partner.variables``, ...).

One model is DAS; two are MAS and its family. The second model (the *partner*) takes the first model's
site, causal model and variables unless ``partner`` says otherwise::

    partner: {layer: null, site: null, causal_model: null, variables: null}   # as model 0

Variables are paired by position: ``alignment.variables=[count]`` with ``partner.causal_model=upup
partner.variables=[demo_count]`` aligns Up-Down's ``count`` in model 0 with Up-Up's ``demo_count`` in
model 1, in one shared block of the aligned space. Models on text (no task) have one variable, the
data's.

A task model the zoo trained must have learned its task: below ``min_task_accuracy`` (validation trial
accuracy, as its training recorded it) it is refused before any work (:func:`check_task_accuracy`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from alignsearch.alignment import NULL
from alignsearch.errors import ConfigError
from alignsearch.models import hooks
from alignsearch.models.base import is_layer_site
from alignsearch.search.pairs import Track
from alignsearch.search.spec import AlignmentPlan, Member, PairSource, RunModel
from alignsearch.settings import AlignmentSettings, PartnerSettings, RunSettings, site_name
from alignsearch.tasks import causal_model_for
from alignsearch.tasks.counterfactual import check_position_occurs, swap_variables


def plan_run(
    models: Sequence[RunModel], a: AlignmentSettings, run: RunSettings, data: PairSource | None = None
) -> AlignmentPlan:
    """The checked plan of a run of ``a`` on ``models`` (one or two), on the tasks' pairs or on ``data``.

    The alignment functions are built once here (seeded by ``run.run_seed()``: ``alignment_seed``, else ``seed``): the run trains them. A run
    ``position`` moves text pairs there (``data.at``) or fixes where task pairs intervene. Zoo models
    must have reached ``run.min_task_accuracy`` (unless a ``snapshot`` of their training is aligned),
    checked once every setting is (a wrong setting is said first)."""
    position = run.where()
    if position is not None and data is not None:
        at = getattr(data, "at", None)
        if at is None:
            raise ConfigError(
                "position", run.position, f"null with data={data.kind} (it has no prompt positions)"
            )
        data = at(position)
    if data is not None and data.stepwise:  # the models' own runs on one text: every position
        a = dataclasses.replace(a, stepwise=True)
    elif data is not None and a.stepwise:
        raise ConfigError("alignment.stepwise", True, f"false with data={data.kind} (a position per prompt)")
    if len(models) != a.models:
        raise ConfigError("models", len(models), f"{a.models} model(s) for alignment={a.name}")
    if a.models == 1:
        check_no_partner(run.partner, a.name)
    members = [_member(m, a, run, i, data) for i, m in enumerate(models)]
    if data is None:
        _check_partner_variables(members, a)
        if position is not None:
            if a.stepwise:
                raise ConfigError("position", run.position, "null with alignment.stepwise=true")
            for member in members:  # before any pair is drawn (or model trained): a position none has
                assert member.causal_model is not None  # task pairs: every member has one
                check_position_occurs(member.task, member.causal_model, position)
    plan = assemble_plan(a, run, members, data)
    plan.position = position if data is None else None
    plan.plan_interchange()
    check_task_accuracy(models, run)
    return plan


def check_task_accuracy(models: Sequence[RunModel], run: RunSettings) -> None:
    """A ConfigError about ``min_task_accuracy`` for the first model whose training recorded a validation
    trial accuracy below ``run.min_task_accuracy``, saying what it reached and the two ways on: train it
    longer, or accept it with a lower ``min_task_accuracy`` (the accuracy rounded down to two decimals).
    Models without recorded training metrics (brought from Python, language models) are not checked, nor
    any model when the run aligns a ``snapshot`` (early weights, on purpose)::

        min_task_accuracy=0.95 is not allowed: expected a threshold that multiobject/gru/seed2-max_steps200
        reaches: its validation trial accuracy is 0.270 after 200 training steps (train it longer, with a
        larger training.max_steps, or accept it with min_task_accuracy=0.27)
    """
    threshold = run.min_task_accuracy
    for model in models if run.snapshot is None else ():
        metrics = model.training_metrics or {}
        accuracy = metrics.get("val_trial_acc")
        if not isinstance(accuracy, int | float) or isinstance(accuracy, bool) or accuracy >= threshold:
            continue
        steps = metrics.get("steps")
        after = (
            f" after {steps} training steps" if isinstance(steps, int) and not isinstance(steps, bool) else ""
        )
        accept = max(0.0, math.floor(accuracy * 100) / 100)
        raise ConfigError(
            "min_task_accuracy",
            threshold,
            f"a threshold that {model.name} reaches: its validation trial accuracy is {accuracy:.3f}{after} "
            f"(train it longer, with a larger training.max_steps, or accept it with "
            f"min_task_accuracy={accept:g})",
        )


def check_no_partner(partner: PartnerSettings, alignment: str) -> None:
    """A ConfigError for a partner setting given to a one-model alignment (it would be ignored)."""
    for key, value in vars(partner).items():
        if value is not None and value != {}:
            raise ConfigError(f"partner.{key}", value, f"null with alignment={alignment}")


def _member(model: RunModel, a: AlignmentSettings, run: RunSettings, index: int, data) -> Member:
    prefix = "partner." if index else ""
    layer, site = (run.partner.layer, run.partner.site) if index else (None, None)
    if layer is None and site is None:
        layer, site = run.layer, run.site
    name = site_name(layer, site)
    if site:
        try:
            width = hooks.site_width(model.model, name)
        except ConfigError as e:
            raise ConfigError(f"{prefix}site", e.value, e.allowed) from None
    elif name in model.model.sites:
        width = model.model.sites[name]
    else:
        # the sites layer= names (not the parts inside a layer: site=layer.0.mlp names those)
        layers = ", ".join(s.removeprefix("layer.") for s in model.model.sites if is_layer_site(s))
        if not layers:  # a model that handles no named site: only module paths reach it
            layers = f"none (it has no named sites: {prefix}site=<module path>)"
        raise ConfigError(f"{prefix}layer", layer, f"a layer of the {model.model.name}: {layers}")
    if data is not None:
        if model.task is not None:
            raise ConfigError(
                "data",
                type(data).__name__,
                f"no data for {model.name}, a task model (its pairs come from its task); text pairs are "
                "for language models",
            )
        return Member(model.name, None, name, width, None, [data.variable])
    if model.task is None:
        raise ConfigError("data", None, f"pairs of text for {model.name}, which reads no task")
    causal_name = (run.partner.causal_model if index else None) or a.causal_model
    try:
        causal_model = causal_model_for(model.task, causal_name)
    except ConfigError as e:
        key = "partner.causal_model" if index else "alignment.causal_model"
        raise ConfigError(key, e.value, e.allowed) from None
    given = (run.partner.variables if index else None) or a.variables
    variables = [NULL if v is None else v for v in given]  # `null` arrives as None
    key = "partner.variables" if index else "alignment.variables"
    for variable in variables:
        try:
            swap_variables(causal_model, variable)
        except ConfigError as e:
            raise ConfigError(key, variable, e.allowed) from None
    return Member(model.name, model.task, name, width, causal_model, variables)


def _check_partner_variables(members: list[Member], a: AlignmentSettings) -> None:
    first = members[0]
    for other in members[1:]:
        assert first.causal_model is not None and other.causal_model is not None  # task pairs have them
        if len(other.variables) != len(first.variables):
            raise ConfigError(
                "partner.variables",
                other.variables,
                f"as many variables as alignment.variables ({len(first.variables)}), paired by position",
            )
        for v0, v1 in zip(first.variables, other.variables, strict=True):
            if (v0 == NULL) != (v1 == NULL) or len(swap_variables(first.causal_model, v0)) != len(
                swap_variables(other.causal_model, v1)
            ):
                raise ConfigError(
                    "partner.variables", other.variables, f"a variable matching {v0} at its position"
                )
        if a.stepwise and tuple(other.task.vocab.tokens) != tuple(first.task.vocab.tokens):
            raise ConfigError(
                "partner.task",
                other.task.name,
                f"a task with the vocabulary of {first.task.name} for stepwise swaps (or alignment.stepwise=false)",
            )


def assemble_plan(
    a: AlignmentSettings, run: RunSettings, members: list[Member], data: PairSource | None = None
) -> AlignmentPlan:
    """The block sizes, directions and alignment functions of checked ``members`` (task or text)."""
    first = members[0]
    named = [v for v in first.variables if v != NULL]
    if not named:
        raise ConfigError("alignment.variables", first.variables, "at least one variable besides null")
    narrowest = min(m.width for m in members)
    if a.whole_site:
        if len(named) != 1:
            raise ConfigError(
                "alignment.variables", first.variables, "one variable with alignment.whole_site"
            )
        sizes = [narrowest]
    else:
        sizes = list(run.n_units) if isinstance(run.n_units, tuple) else [run.n_units] * len(named)
        check_unit_sizes(sizes, narrowest, " and ".join(f"{m.site} of {m.name}" for m in members))
    directions = parse_directions(a.directions, "alignment.directions", len(members))
    cl_directions = parse_directions(a.cl_directions or [], "alignment.cl_directions", len(members))
    if not directions and not cl_directions:
        raise ConfigError("alignment.directions", [], "at least one trained direction (or cl_directions)")
    if a.stepwise and data is None:  # task pairs have latent targets per pair only
        if cl_directions:
            raise ConfigError("alignment.cl_directions", a.cl_directions, "[] with alignment.stepwise=true")
        if a.cl_weight > 0:
            raise ConfigError("alignment.cl_weight", a.cl_weight, "0 with alignment.stepwise=true")
    plan = AlignmentPlan(members, sizes, directions, cl_directions, a, data, seed=run.run_seed())
    # the setting that asks for the latent loss: the CL-only directions, else the weight on behaviour
    key, value = (
        ("alignment.cl_directions", a.cl_directions)
        if cl_directions
        else ("alignment.cl_weight", a.cl_weight)
    )
    check_natural_targets(key, value, plan.tracks(), data)
    return plan


def check_natural_targets(key: str, value: Any, tracks: Sequence[Track], data: PairSource | None) -> None:
    """A ConfigError naming ``key=value``, the setting that makes some of ``tracks`` latent, when ``data``
    gives the counterfactual-latent loss nothing to pull towards (text pairs without any counterfactual
    prompt). Task pairs and a corpus always have natural targets.

    >>> from alignsearch.search.pairs import Track
    >>> from alignsearch.search.text_data import TextPairSource
    >>> class NoCounterfactuals(TextPairSource):
    ...     has_natural_targets = False
    >>> check_natural_targets("alignment.cl_weight", 0.5, [Track(0, 0, "count", latent=True)],
    ...                       NoCounterfactuals(None))  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    alignsearch.errors.ConfigError: alignment.cl_weight=0.5 is not allowed: expected natural targets for the
    counterfactual-latent loss: the pairs give no counterfactual prompts (add a "counterfactual" field: a
    prompt that naturally holds the intervened state)
    """
    if data is None or not any(t.latent for t in tracks) or getattr(data, "has_natural_targets", True):
        return
    raise ConfigError(
        key, value, f"natural targets for the counterfactual-latent loss: {data.no_natural_targets}"
    )


def check_unit_sizes(sizes: Sequence[int], width: int, where: str) -> None:
    """A ConfigError for a block size outside ``[1, width]``, ``where`` naming what is that wide.

    >>> check_unit_sizes([4, 200], 128, "layer.0 of multiobject/gru/seed0")
    Traceback (most recent call last):
    ...
    alignsearch.errors.ConfigError: n_units=200 is not allowed: expected an integer in [1, 128] (the width of layer.0 of multiobject/gru/seed0)
    """
    for size in sizes:
        if not 1 <= size <= width:
            raise ConfigError("n_units", size, f"an integer in [1, {width}] (the width of {where})")


def parse_directions(value: Any, key: str, n_models: int) -> list[tuple[int, int]]:
    """``[[0, 1], [1, 1]]`` (or ``["0>1", "1>1"]``) -> ``[(0, 1), (1, 1)]``; ``None`` -> every pair."""
    every = [(s, t) for s in range(n_models) for t in range(n_models)]
    if value is None:
        return every
    example = ",".join(f"[{s},{t}]" for s, t in every)
    allowed = f"a list of [source, target] pairs of models 0..{n_models - 1}, e.g. [{example}]"
    if not isinstance(value, list | tuple):
        raise ConfigError(key, value, allowed)
    out = []
    for item in value:
        parts = item.split(">") if isinstance(item, str) else item
        shown = item if isinstance(item, str) else list(item) if isinstance(item, list | tuple) else item
        try:
            source, target = (int(p) for p in parts)
            direction = (source, target)
        except (TypeError, ValueError):
            raise ConfigError(key, shown, allowed) from None
        if direction not in every:
            raise ConfigError(key, shown, allowed)
        out.append(direction)
    return out
