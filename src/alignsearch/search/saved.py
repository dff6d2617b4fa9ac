"""A trained alignment on disk (``alignment.pt``): enough to rebuild its functions and apply it again.

The file holds the interchange's weights and what rebuilding it needs: the alignment function and layout
configs, each model's site width, the variables and their block sizes, and the run's flat config.

Loading one runs nothing it holds: it is read as data (``weights_only``), and its function and layout are
built only if they name classes of alignsearch or of modules your own configs name or
``$ALIGNSEARCH_TRUSTED_MODULES`` lists (:func:`alignsearch.components.untrusted_target`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from alignsearch import atomic
from alignsearch.alignment import AlignmentFunction, FixedLayout, Interchange
from alignsearch.components import instantiate_checked, untrusted_target
from alignsearch.engine.trainer import load_weights_only
from alignsearch.errors import ConfigError
from alignsearch.search.spec import AlignmentPlan, build_function


@dataclass
class SavedAlignment:
    """A rebuilt alignment: the interchange and what it aligns (models by name and site, variables)."""

    interchange: Interchange
    models: list[str]
    sites: list[str]
    variables: list[str]
    config: dict[str, Any]
    widths: list[int]
    """Each model's width at its site (what the alignment's functions take)."""


def save_alignment(path: Path, plan: AlignmentPlan, state: dict[str, Any], config: dict[str, Any]) -> None:
    atomic.save_torch(
        path,
        {
            "state_dict": state,
            "config": config,
            "function": plan.settings.function,
            "layout": plan.settings.layout,
            "keep_target": plan.settings.keep_target,
            "match_scales": plan.settings.match_scales,
            "widths": [m.width for m in plan.members],
            "models": [m.name for m in plan.members],
            "sites": [m.site for m in plan.members],
            "variables": list(plan.variables),
            "sizes": list(plan.sizes),
        },
    )


SAVED_KEYS = ("state_dict", "config", "function", "layout", "keep_target", "widths", "models", "sites")
"""What a saved alignment holds besides its variables and sizes."""


def load_alignment(path: Path | str) -> SavedAlignment:
    """The alignment saved at ``path``, rebuilt; a file that is not one is a one-line ConfigError. It is
    read as data (``weights_only``), and a function or layout that is not a trusted class of its kind
    is refused before anything of it is imported or called: nothing in it runs."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            "alignment", str(path), "an alignment file (alignment.pt of a run, or a saved result)"
        )
    try:
        saved = load_weights_only(path)
    except Exception as e:  # noqa: BLE001 - any failure to read means the file is unusable
        raise ConfigError(
            "alignment",
            str(path),
            f"an alignment file written by alignsearch (it is unreadable: {type(e).__name__})",
        ) from None
    missing = [
        k for k in (*SAVED_KEYS, "variables", "sizes") if not isinstance(saved, dict) or k not in saved
    ]
    if missing:
        raise ConfigError("alignment", str(path), f"an alignment file (it lacks {', '.join(missing)})")
    for key, base in (("function", AlignmentFunction), ("layout", FixedLayout)):
        refusal = untrusted_target(saved[key], base, f"its {key}")
        if refusal:
            raise ConfigError(
                "alignment", str(path), f"an alignment file of trusted classes: it names {refusal}"
            )
    total = sum(saved["sizes"])
    functions = [build_function(OmegaConf.create(saved["function"]), w, total) for w in saved["widths"]]
    layout = instantiate_checked(
        OmegaConf.create(saved["layout"]),
        None,
        variables=saved["variables"],
        sizes=saved["sizes"],
        code_width=max(f.code_width for f in functions),
        n_aligned=min(f.n_aligned for f in functions),
    )
    matched = saved.get("match_scales", False)  # files written before the setting have none
    interchange = Interchange(functions, layout, keep_target=saved["keep_target"], match_scales=matched)
    interchange.load_state_dict(saved["state_dict"])
    return SavedAlignment(
        interchange.eval(),
        saved["models"],
        saved["sites"],
        saved["variables"],
        saved["config"],
        saved["widths"],
    )
