"""From a composed config to an alignment plan: partner merging, every setting checked against the tasks
and models, errors keyed by the command line's keys.

One model is DAS; two are MAS and its family. The second model (the *partner*) is described by the
``partner`` settings of the run, each defaulting to the first model's::

    partner: {model: null, model_settings: {}, task: null, seed: null, layer: null, causal_model: null,
              variables: null}
    # -> the same architecture (and settings) and task, seed + 1, the same layer, causal model, variables

``partner.model`` names a ``conf/model`` choice with its default settings; ``partner.model_settings``
changes some of them (``+partner.model_settings.d_model=64``: a GRU of width 64 beside one of 128).

Variables are paired by position: ``alignment.variables=[count]`` with ``partner.causal_model=upup
partner.variables=[demo_count]`` aligns Up-Down's ``count`` in model 0 with Up-Up's ``demo_count`` in
model 1, in one shared block of the aligned space.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from alignsearch import zoo
from alignsearch.alignment import NULL
from alignsearch.cli.checks import search_dirs
from alignsearch.components import load_choice
from alignsearch.errors import ConfigError
from alignsearch.models import SequenceModel, hooks
from alignsearch.search.spec import AlignmentPlan, Member, PairSource
from alignsearch.settings import AlignmentSettings, TrainingSettings
from alignsearch.tasks import causal_model_for
from alignsearch.tasks.counterfactual import swap_variables

PARTNER_KEYS = ("model", "model_settings", "task", "seed", "layer", "site", "causal_model", "variables")


def site_name(layer: Any, site: str | None = None) -> str:
    """The site of a run: ``site`` if given (a site name or a module path), else ``layer`` as a site name:
    ``0`` -> ``layer.0``; ``embedding`` stays."""
    if site:
        return str(site)
    return "embedding" if str(layer) == "embedding" else f"layer.{layer}"


def member_configs(cfg: DictConfig) -> list[DictConfig]:
    """One run config per model of the alignment: the run's own, then its partner's (if two models)."""
    n_models = int(cfg.alignment.get("models", 1))
    partner = cfg.get("partner") or {}
    if n_models == 1:
        for key in PARTNER_KEYS:
            if partner.get(key) is not None and partner.get(key) != {}:
                raise ConfigError(
                    f"partner.{key}", partner.get(key), f"null with alignment={cfg.alignment.name}"
                )
        return [cfg]
    if n_models != 2:
        raise ConfigError("alignment.models", n_models, "1 or 2")
    other = cfg.copy()
    if partner.get("model") is not None:
        other.model = load_choice("model", str(partner.model), "partner.model", search_dirs())
    if partner.get("model_settings"):
        other.model = OmegaConf.merge(other.model, partner.model_settings)
    if partner.get("task") is not None:
        other.task = load_choice("task", str(partner.task), "partner.task", search_dirs())
    seed = partner.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ConfigError("partner.seed", seed, "a non-negative integer, or null for seed + 1")
    other.seed = cfg.seed + 1 if seed is None else seed
    if partner.get("layer") is not None:
        other.layer = partner.layer
        other.site = None
    if partner.get("site") is not None:
        other.site = partner.site
    if partner.get("causal_model") is not None:
        other.alignment.causal_model = partner.causal_model
    if partner.get("variables") is not None:
        other.alignment.variables = partner.variables
    return [cfg, other]


def parse_directions(value: Any, key: str, n_models: int) -> list[tuple[int, int]]:
    """``[[0, 1], [1, 1]]`` (or ``["0>1", "1>1"]``) -> ``[(0, 1), (1, 1)]``; ``None`` -> every pair."""
    every = list(itertools.product(range(n_models), repeat=2))
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
            direction = tuple(int(p) for p in parts)
        except (TypeError, ValueError):
            raise ConfigError(key, shown, allowed) from None
        if direction not in every:
            raise ConfigError(key, shown, allowed)
        out.append(direction)
    return out


def _member(cfg: DictConfig, name: str, task, model: SequenceModel, index: int) -> Member:
    prefix = "" if index == 0 else "partner."
    site = site_name(cfg.layer, cfg.get("site"))
    if cfg.get("site"):
        try:
            width = hooks.site_width(model, site)
        except ConfigError as e:
            raise ConfigError(f"{prefix}site", e.value, e.allowed) from None
    elif site in model.sites:
        width = model.sites[site]
    else:
        layers = ", ".join(s.removeprefix("layer.") for s in model.sites)  # the sites layer= names
        if not layers:  # a model that handles no named site: only module paths reach it
            layers = f"none (it has no named sites: {prefix}site=<module path>)"
        raise ConfigError(f"{prefix}layer", cfg.layer, f"a layer of the {model.name}: {layers}")
    try:
        causal_model = causal_model_for(task, cfg.alignment.causal_model)
    except ConfigError as e:
        key = "partner.causal_model" if index else "alignment.causal_model"
        raise ConfigError(key, e.value, e.allowed) from None
    variables = [NULL if v is None else v for v in cfg.alignment.variables]  # `null` arrives as None
    key = "partner.variables" if index else "alignment.variables"
    if not variables or len(set(variables)) != len(variables):
        raise ConfigError(key, variables, "a non-empty list without repeats")
    for variable in variables:
        try:
            swap_variables(causal_model, variable)
        except ConfigError as e:
            raise ConfigError(key, variable, e.allowed) from None
    return Member(name, task, site, width, causal_model, variables)


def plan_alignment(cfgs: list[DictConfig], requests: list) -> AlignmentPlan:
    """Check the alignment settings against the tasks and (untrained) models; raise ConfigError if wrong.

    ``cfgs`` come from :func:`member_configs`; ``requests`` are the matching zoo requests.
    """
    cfg = cfgs[0]
    a = AlignmentSettings.parse(cfg.alignment)  # types and ranges of every alignment setting
    members = [
        _member(c, zoo.short_name(r.path), r.task, r.model, i)
        for i, (c, r) in enumerate(zip(cfgs, requests, strict=True))
    ]
    first = members[0]
    for other in members[1:]:
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
    return assemble_plan(cfg, a, members)


def assemble_plan(
    cfg: DictConfig, a: AlignmentSettings, members: list[Member], data: PairSource | None = None
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
        n_units = cfg.n_units
        sizes = list(n_units) if OmegaConf.is_list(n_units) else [n_units] * len(named)
        for size in sizes:
            if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= narrowest:
                sites = " and ".join(f"{m.site} of {m.name}" for m in members)
                raise ConfigError("n_units", size, f"an integer in [1, {narrowest}] (the width of {sites})")
    directions = parse_directions(a.directions, "alignment.directions", len(members))
    cl_directions = parse_directions(a.cl_directions or [], "alignment.cl_directions", len(members))
    if not directions and not cl_directions:
        raise ConfigError("alignment.directions", [], "at least one trained direction (or cl_directions)")
    if cl_directions and a.stepwise and data is None:  # task pairs have latent targets per pair only
        raise ConfigError("alignment.cl_directions", a.cl_directions, "[] with alignment.stepwise=true")
    plan = AlignmentPlan(members, sizes, directions, cl_directions, a, data)
    plan.build_interchange()  # checks the function and the layout (total size, room for null)
    return plan


def named_settings(models: Sequence[tuple[Any, Any, TrainingSettings | None]]) -> dict[str, Any]:
    """The settings that name each aligned model in the zoo besides task, model and seed
    (:func:`alignsearch.zoo.entry_settings`), as flat config keys, ``{"model.d_model": 64}``; the
    partner's start with ``partner_`` (its training is the first model's). ``models``: (task, model,
    training) per member; a model without ``settings()`` (brought from elsewhere) adds none."""
    out: dict[str, Any] = {}
    for i, (task, model, training) in enumerate(models):
        if not (hasattr(task, "settings") and hasattr(model, "settings")):
            continue
        named = zoo.entry_settings(task, model, None if i else training)
        out |= {("partner_" if i else "") + key: value for key, value in named.items()}
    return out


def flat_config(cfg: DictConfig, plan: AlignmentPlan, choices: dict[str, str]) -> dict[str, Any]:
    """The choices of a run as one flat dict (what dashboards and reports pivot on)."""
    a = plan.settings
    first = plan.members[0]
    flat = {
        "task": choices.get("task"),
        "model": choices.get("model"),
        "alignment": a.name,
        "seed": int(cfg.seed),
        "layer": cfg.layer,
        "site": first.site,
        "n_units": plan.sizes[0] if len(set(plan.sizes)) == 1 else plan.sizes,
        "variables": list(plan.variables),
        "causal_model": first.causal_model.name if first.causal_model else None,
        "stepwise": bool(a.stepwise),
        "lr": float(a.lr),
        "batch_size": int(a.batch_size),
        "max_steps": int(a.max_steps),
        "function": a.function["_target_"].rsplit(".", 1)[-1],
        "layout": a.layout["_target_"].rsplit(".", 1)[-1],
        "snapshot": cfg.get("snapshot"),
    }
    if plan.data is not None:  # text: the data names the "task", the models name themselves
        flat["data"] = str(OmegaConf.select(cfg, "data.path", default=None) or "python rows")
        flat["model"] = plan.members[0].name
    if len(plan.members) > 1:
        partner, settings = plan.members[1], cfg.get("partner") or {}
        flat |= {
            "partner_model": partner.name
            if plan.data is not None
            else settings.get("model") or flat["model"],
            "partner_task": settings.get("task") or flat["task"],
            "partner_seed": int(settings.get("seed") if settings.get("seed") is not None else cfg.seed + 1),
            "partner_site": partner.site,
            "partner_causal_model": partner.causal_model.name if partner.causal_model else None,
            "partner_variables": list(partner.variables),
            "directions": [f"{s}>{t}" for s, t in plan.directions],
            "cl_directions": [f"{s}>{t}" for s, t in plan.cl_directions],
            "cl_eps": a.cl_eps,
        }
    return flat
