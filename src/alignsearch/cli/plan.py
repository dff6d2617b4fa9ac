"""A partner's config: the second model of a two-model alignment, composed from the run's own config.

One model is DAS; two are MAS and its family. The second model (the *partner*) is described by the
``partner`` settings of the run, each defaulting to the first model's::

    partner: {model: null, model_settings: {}, task: null, seed: null, layer: null, causal_model: null,
              variables: null}
    # -> the same architecture (and settings) and task, seed + 1, the same layer, causal model, variables

``partner.model`` names a ``conf/model`` choice with its default settings; ``partner.model_settings``
changes some of them (``+partner.model_settings.d_model=64``: a GRU of width 64 beside one of 128).

Variables are paired by position: ``alignment.variables=[count]`` with ``partner.causal_model=upup
partner.variables=[demo_count]`` aligns Up-Down's ``count`` in model 0 with Up-Up's ``demo_count`` in
model 1, in one shared block of the aligned space (checked by :mod:`alignsearch.search.planning`).
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from alignsearch.cli.config_dirs import search_dirs
from alignsearch.components import load_choice
from alignsearch.errors import ConfigError
from alignsearch.search.planning import check_no_partner
from alignsearch.settings import RunSettings, unknown_key


def member_configs(cfg: DictConfig) -> list[DictConfig]:
    """One run config per model of the alignment: the run's own, then its partner's (if two models)."""
    n_models = int(cfg.alignment.get("models", 1))
    run = RunSettings.parse(cfg)  # the partner's settings typed and checked
    partner = run.partner
    if n_models == 1:
        check_no_partner(partner, cfg.alignment.name)
        return [cfg]
    if n_models != 2:
        raise ConfigError("alignment.models", n_models, "1 or 2")
    other = cfg.copy()
    if partner.model is not None:
        other.model = load_choice("model", partner.model, "partner.model", search_dirs())
    if partner.model_settings:
        known = [f"partner.model_settings.{k}" for k in other.model if k != "_target_"]
        for key, value in partner.model_settings.items():
            if key not in other.model or key == "_target_":
                raise unknown_key(f"partner.model_settings.{key}", value, known)
        other.model = OmegaConf.merge(other.model, partner.model_settings)
    if partner.task is not None:
        other.task = load_choice("task", partner.task, "partner.task", search_dirs())
    other.seed = run.partner_seed()
    if partner.layer is not None:
        other.layer = partner.layer
        other.site = None
    if partner.site is not None:
        other.site = partner.site
    if partner.causal_model is not None:
        other.alignment.causal_model = partner.causal_model
    if partner.variables is not None:
        other.alignment.variables = list(partner.variables)
    return [cfg, other]
