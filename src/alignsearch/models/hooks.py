"""Sites named by module path: interventions on any ``nn.Module`` through forward hooks.

A model's own sites (``embedding``, ``layer.0``, ...) run through its :meth:`SequenceModel.encode`.
Any other site is a module path inside the model, ``blocks.1`` or ``transformer.h.1``: the module must
return a ``(batch, sequence, width)`` tensor, or a tuple whose first item is one, and the intervention
replaces that output at its positions with a forward hook::

    site_activations(model, ids, "blocks.1")           # (batch, sequence, width)
    encode(model, ids, Intervention("blocks.1", mask, fn))

In a recurrent layer a hook changes the layer's output sequence but not the state it carries on with:
there, use the model's own ``layer.<i>`` sites, which intervene on the state itself.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from alignsearch.errors import ConfigError
from alignsearch.models.base import Intervention, SequenceModel

PROBE_IDS = torch.tensor([[1, 2, 3, 4]])
"""A tiny input to find a module site's width (any valid token ids)."""


def is_named_site(model: SequenceModel, site: str) -> bool:
    return site in model.sites


def module_at(model: nn.Module, site: str) -> nn.Module:
    """The submodule at ``site`` (inside ``model.module_root`` if the model names one, e.g. the HuggingFace
    model it wraps), or a one-line ConfigError listing close matches."""
    root = getattr(model, "module_root", model)
    for base in (root, model):
        try:
            return base.get_submodule(site)
        except AttributeError:
            continue
    else:
        sites = getattr(model, "sites", {})
        if sites and site not in sites and (site == "embedding" or site.startswith("layer.")):
            # a named site's form: the model (one that names sites) says which it has (a ConfigError)
            cast(SequenceModel, model).check_site(site)
        # a site and a module can share a name (``embedding``): each name once
        names = list(dict.fromkeys([*sites, *(name for name, _ in root.named_modules() if name)]))
        close = difflib.get_close_matches(site, names, n=5, cutoff=0.5)
        hint = f"close matches: {', '.join(close)}" if close else f"e.g. {', '.join(names[:6])}"
        if not sites:  # a wrapper of a plain module: name what the user wrote, not the wrapper
            allowed = f"a module path of the {type(root).__name__} (it has no named sites; {hint})"
        else:
            allowed = f"a site or module path of the {type(model).__name__} ({hint})"
        raise ConfigError("site", site, allowed) from None


def _first_tensor(output: Any) -> Tensor | None:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, tuple) and output and isinstance(output[0], Tensor):
        return output[0]
    return None


def _replace_first(output: Any, new: Tensor) -> Any:
    return new if isinstance(output, Tensor) else (new, *output[1:])


def hooked(module: nn.Module, fn: Callable[[Tensor], Tensor | None]):
    """A forward hook that hands the module's (batch, sequence, width) output to ``fn``; if ``fn`` returns a
    tensor it replaces the output."""

    def hook(mod: nn.Module, args: Any, output: Any) -> Any:
        h = _first_tensor(output)
        if h is None or h.dim() != 3:
            raise ConfigError("site", type(mod).__name__, "a module whose output is (batch, sequence, width)")
        new = fn(h)
        return None if new is None else _replace_first(output, new)

    return module.register_forward_hook(hook)


def encode(model: SequenceModel, ids: Tensor, intervention: Intervention | None = None) -> Tensor:
    """``model.encode`` for any site: the model's own, or a module path (through a hook)."""
    if intervention is None or is_named_site(model, intervention.site):
        return model.encode(ids, intervention)
    handle = hooked(module_at(model, intervention.site), intervention.apply)
    try:
        return model.encode(ids)
    finally:
        handle.remove()


def site_activations(model: SequenceModel, ids: Tensor, site: str) -> Tensor:
    """``model.activations`` for any site: the model's own, or a module path (through a hook). The ids
    are moved to the model's device; the activations are on it."""
    ids = ids.to(device_of(model))
    if is_named_site(model, site):
        return model.activations(ids, site)
    module = module_at(model, site)
    seen = all_seen(site, lambda fn: hooked(module, fn), lambda: model.encode(ids))
    check_module_output(site, seen, ids)
    return seen[0]


def recorder(seen: dict[str, Tensor], site: str) -> Callable[[Tensor], None]:
    """A hook function that keeps the first tensor it sees as ``seen[site]`` and changes nothing."""

    def record(h: Tensor) -> None:
        seen.setdefault(site, h)

    return record


def sites_activations(model: SequenceModel, ids: Tensor, sites: list[str]) -> dict[str, Tensor]:
    """:func:`site_activations` of several sites: in one run of the model where it reads them all through
    hooks (HuggingFace models: :meth:`~alignsearch.models.hf.HFSequenceModel.activations_of`; module
    paths of any model), else one run per named site (the task models' own sites, cheap models)."""
    ids = ids.to(device_of(model))
    many = getattr(model, "activations_of", None)
    if many is not None:
        return many(ids, list(sites))
    paths = [s for s in sites if not is_named_site(model, s)]
    out = {s: model.activations(ids, s) for s in sites if is_named_site(model, s)}
    if paths:
        seen: dict[str, Tensor] = {}
        handles = [hooked(module_at(model, s), recorder(seen, s)) for s in paths]
        try:
            model.encode(ids)
        finally:
            for handle in handles:
                handle.remove()
        check_all_seen(paths, seen)
        out |= seen
    return {s: out[s] for s in sites}


def device_of(model: nn.Module) -> torch.device:
    """Where ``model``'s weights are (the CPU for a model without any)."""
    return next(model.parameters(), torch.empty(0)).device


def first_seen(site: str, register: Callable, run: Callable[[], Any]) -> Tensor:
    """The first tensor a hook sees while ``run()`` runs: ``register(fn)`` puts ``fn`` (which records and
    changes nothing) on the site and returns the hook's handle; a ConfigError if the site never runs."""
    return all_seen(site, register, run)[0]


def all_seen(site: str, register: Callable, run: Callable[[], Any]) -> list[Tensor]:
    """Every tensor a hook sees while ``run()`` runs, in order (:func:`first_seen`); a ConfigError if the
    site never runs."""
    seen: list[Tensor] = []
    handle = register(seen.append)  # returns None: changes nothing
    try:
        run()
    finally:
        handle.remove()
    if not seen:
        raise ConfigError(
            "site", site, "a module that runs while the model reads its input (not the read-out)"
        )
    return seen


def check_module_output(site: str, seen: Sequence[Tensor], ids: Tensor) -> None:
    """A one-line ConfigError unless the module at the path ``site`` ran once while the model read ``ids``
    (``seen``: its outputs) and gave a batch-first ``(batch, length, width)`` output: an intervention on a
    module that runs twice would replace both outputs, and a sequence-first output would be read and
    replaced with its sequences and positions swapped."""
    if len(seen) > 1:
        raise ConfigError(
            "site",
            site,
            f"a module that runs once per forward pass: it ran {len(seen)} times while the model read one "
            "batch, and an intervention there would replace each of its outputs (name a module that runs "
            "once, e.g. give each call its own module)",
        )
    shape = tuple(seen[0].shape)
    if shape[:2] != tuple(ids.shape):
        raise ConfigError(
            "site",
            site,
            f"a module whose output is batch-first (batch, length, width) like the ids (batch, length): for "
            f"ids of shape {tuple(ids.shape)} it gives {shape} (a sequence-first module, e.g. nn.GRU "
            "without batch_first=True: make it batch_first=True, or wrap the model so that the site is a "
            "module whose output is (batch, length, width), e.g. an nn.Identity on the output transposed)",
        )


@torch.no_grad()
def site_width(model: SequenceModel, site: str) -> int:
    """The width of a site's vectors (a module path's is found by running a tiny input)."""
    if is_named_site(model, site):
        return model.sites[site]
    module_at(model, site)
    return int(site_activations(model, PROBE_IDS, site).shape[-1])


def check_all_seen(sites: Sequence[str], seen: dict[str, Tensor]) -> None:
    """A ConfigError for the first of ``sites`` that recorded nothing: a module that never ran while the
    model read its input."""
    for site in sites:
        if site not in seen:
            raise ConfigError(
                "site", site, "a module that runs while the model reads its input (not the read-out)"
            )
