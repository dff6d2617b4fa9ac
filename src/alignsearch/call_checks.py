"""What the Python API checks of a whole call, beyond each argument's own rule, so that a call never
gives an answer to another question than the one asked:

- :func:`check_overrides`: every override counts or is refused. An override of a key that one of the
  call's arguments sets (``seed=3`` beside ``seed=``, ``alignment.max_steps=20`` beside
  ``max_steps=30``) may only repeat the argument's value; one that says something else is refused,
  naming the argument to give instead. An override of a key the call never reads (``model.d_model`` for a
  model already given) is refused, listing what the call reads.
- :func:`check_pairs_fit`: counterfactual pairs handed to ``api.iia`` swap the variable asked, follow the
  causal model the alignment was trained on, and come from the task (its settings included) the models
  read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from omegaconf import OmegaConf

from alignsearch.errors import ConfigError
from alignsearch.settings import (
    AlignmentSettings,
    boolean,
    fraction,
    json_ready,
    optional,
    plain,
    run_position,
    seed_value,
    site_layer,
    text,
    unit_sizes,
    variable_list,
)


@dataclasses.dataclass(frozen=True)
class Owned:
    """A config key that an argument of the call sets: the argument's name and value (``group``: the key
    is a config group, ``alignment=das``, compared by the choice's name)."""

    argument: str
    value: Any
    group: bool = False


RULES: dict[str, Callable[[str, Any], Any]] = {
    "seed": seed_value,
    "layer": site_layer,
    "site": optional(text),
    "n_units": unit_sizes,
    "position": optional(run_position),
    "alignment.variables": variable_list,
    "alignment.causal_model": text,
    "hardware.progress_bar": boolean,
    "min_task_accuracy": fraction,
}
"""How a key's value is read before an override and an argument are compared (``position=-1`` is
``last``); an ``alignment.<key>`` is read by its :class:`AlignmentSettings` rule."""


def override_keys(overrides: Sequence[str]) -> list[tuple[str, Any, bool]]:
    """Each override as ``(key, value, deletes)``: ``alignment.lr=0.1`` -> ``("alignment.lr", 0.1,
    False)``, ``~partner.seed`` -> ``("partner.seed", None, True)``; ``+``/``++`` dropped.

    >>> override_keys(["+alignment.lr=0.1", "alignment=mas", "~seed"])
    [('alignment.lr', 0.1, False), ('alignment', 'mas', False), ('seed', None, True)]
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return [(o.key_or_group, None if o.is_delete() else o.value(), o.is_delete()) for o in parsed]


def check_overrides(
    cfg: Any,
    overrides: Sequence[str],
    *,
    call: str,
    owned: Mapping[str, Owned],
    reads: Sequence[str],
    fixed: Mapping[str, str] = {},  # noqa: B006 - read only
    not_read: str = "",
) -> None:
    """A one-line ConfigError (about the argument ``overrides``) for an override that would not count.

    ``cfg`` is the config composed with ``overrides``; ``owned``, the keys the call's arguments set;
    ``reads``, the keys and groups (``alignment`` covers ``alignment.<key>``) the call reads from the
    composed config; ``fixed``, keys the call sets itself, each with what to give instead;
    ``not_read`` says why the rest are not read.
    """
    for (key, value, deletes), written in zip(override_keys(overrides), overrides, strict=True):
        if key in fixed:
            raise ConfigError("overrides", written, f"no override of {key}: {fixed[key]}").as_argument(
                "overrides"
            )
        if key in owned:
            _check_owned(cfg, key, value, deletes, written, owned[key])
            continue
        if not any(key == r or key.startswith(f"{r}.") for r in reads):
            shown = ", ".join(reads)
            why = f" ({not_read})" if not_read else ""
            raise ConfigError(
                "overrides", written, f"overrides of what {call} reads: {shown}{why}"
            ).as_argument("overrides")


def _check_owned(cfg: Any, key: str, value: Any, deletes: bool, written: str, owned: Owned) -> None:
    """A ConfigError unless the override ``written`` of ``key`` says what the argument says."""
    if deletes:
        said = dataclasses.MISSING
    elif not owned.group and isinstance(value, str) and "${" in value:  # an interpolation: its value
        said = plain(OmegaConf.select(cfg, key, throw_on_missing=False))
    else:  # this override's own value (a later one of the same key is checked on its own)
        said = value
    if said is not dataclasses.MISSING and _same(_read(key, said), _read(key, owned.value)):
        return
    instead = "" if deletes else f": give {owned.argument}={_read(key, said)!r} instead"
    raise ConfigError(
        "overrides",
        written,
        f"no override of what the argument {owned.argument} sets ({owned.argument}={owned.value!r}; "
        f"an override may repeat it, not change it){instead}",
    ).as_argument("overrides")


def _read(key: str, value: Any) -> Any:
    """``value`` as ``key``'s rule reads it (as it is where the rule refuses it: the argument's own
    check says why)."""
    rule = RULES.get(key)
    if rule is None and key.startswith("alignment."):
        fields = {f.name: f for f in dataclasses.fields(AlignmentSettings)}
        field = fields.get(key.split(".", 1)[1])
        rule = field.metadata["check"] if field is not None else None
    try:
        return json_ready(rule(key, plain(value)) if rule is not None else plain(value))
    except ConfigError:
        return json_ready(plain(value))


def _same(a: Any, b: Any) -> bool:
    """Equal values, a bool never equal to a number (``1 == True`` in Python)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    numbers = isinstance(a, int | float) and isinstance(b, int | float)
    return (type(a) is type(b) or numbers) and a == b


# -- pairs for an alignment -------------------------------------------------------------------------------
def check_pairs_fit(
    config: Mapping[str, Any],
    variables: Sequence[str],
    pairs: Any,
    target: Any,
    source: Any,
    target_index: int,
    source_index: int,
    variable: str | None,
) -> str:
    """The alignment's variable that counterfactual ``pairs`` measure (the name the alignment's records
    give it), or a one-line ConfigError: the pairs must follow the causal model the alignment was trained
    on for the target (and the source), swap its variable (``variable``, where asked), and come from
    the task the target (and source) model reads, with the same settings.

    ``config`` is the alignment's flat config (its ``causal_model``, ``variables`` and, with two models,
    ``partner_causal_model`` and ``partner_variables``); ``variables``, its layout's variables (model 0's
    names); ``target`` and ``source`` the run's models (with their ``task``)."""
    pairs_variable = pairs.variable
    for index, model, task, causal_model, role in (
        (target_index, target, pairs.task, pairs.causal_model, ""),
        (source_index, source, pairs.source_task or pairs.task, pairs.source_causal_model, "source_"),
    ):
        causal_model = causal_model or pairs.causal_model
        _check_task(task, model, role)
        trained = _member(config, index, "causal_model")
        if causal_model is not None and trained is not None and causal_model != trained:
            raise ConfigError(
                f"pairs.{role}causal_model",
                causal_model,
                f"{trained}, the causal model the alignment was trained on for model {index} "
                f"({model.name}): api.pairs(model, {trained!r}, ...)",
            )
    member_variables = list(_member(config, target_index, "variables") or variables)
    if len(member_variables) != len(variables):
        member_variables = list(variables)
    if variable is not None:
        if variable not in variables:
            raise ConfigError(
                "variable", variable, f"one of the alignment's variables: {', '.join(map(str, variables))}"
            )
        wanted = member_variables[list(variables).index(variable)]
        if pairs_variable != wanted:
            trained = _member(config, target_index, "causal_model")
            made = f"api.pairs(model, {trained!r}, {wanted!r})" if trained else "pairs that swap it"
            raise ConfigError(
                "pairs.variable",
                pairs_variable,
                f"{wanted}, the variable asked (variable={variable!r}) in model {target_index}: {made}",
            )
        return variable
    if pairs_variable not in member_variables:
        raise ConfigError(
            "variable",
            pairs_variable,
            f"one of the alignment's variables: {', '.join(map(str, member_variables))}",
        )
    return variables[member_variables.index(pairs_variable)]


def _member(config: Mapping[str, Any], index: int, key: str) -> Any:
    """Model ``index``'s ``key`` in the alignment's flat config (the partner's with ``partner_``, else
    model 0's); None if the config does not say."""
    if index:
        value = config.get(f"partner_{key}")
        if value is not None:
            return value
    return config.get(key)


def _check_task(task: Any, model: Any, role: str) -> None:
    """A ConfigError unless ``task`` (the pairs', or with ``role`` ``source_`` their sources') has the
    settings of the task ``model`` reads."""
    theirs = getattr(model, "task", None)
    if task is None or theirs is None or not hasattr(task, "settings") or not hasattr(theirs, "settings"):
        return
    mine, wanted = json_ready(task.settings()), json_ready(theirs.settings())
    for key in sorted(set(mine) | set(wanted)):
        if not _same(mine.get(key), wanted.get(key)):
            raise ConfigError(
                f"pairs.{role}task.{key}",
                _shown(mine.get(key)),
                f"{_shown(wanted.get(key))}, as the task of the {'source' if role else 'target'} model "
                f"{model.name} "
                f"({theirs.name}): api.pairs(model, ...) makes pairs of a model's own task",
            )


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)
