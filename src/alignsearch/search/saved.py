"""A trained alignment on disk (``alignment.pt``): enough to rebuild its functions and apply it again.

The file holds the interchange's weights and what rebuilding it needs: the alignment function and layout
configs, each model's site width, the variables and their block sizes, and the run's flat config.

Loading one runs nothing it holds: it is read as data (``weights_only``), every value is checked against
its form, and its function and layout are built from their settings, only if they name classes of their
kind in alignsearch or in modules your own configs name or ``$ALIGNSEARCH_TRUSTED_MODULES`` lists
(:func:`alignsearch.components.from_data`); nothing is resolved or instantiated by Hydra.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from alignsearch import atomic
from alignsearch.alignment import AlignmentFunction, FixedLayout, Interchange
from alignsearch.components import from_data, trusted_class
from alignsearch.engine.trainer import load_weights_only
from alignsearch.errors import ConfigError, shorten
from alignsearch.file_data import FileDataError, exact_keys, plain_data
from alignsearch.search.spec import AlignmentPlan, Builder, interchange_of


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
OPTIONAL_KEYS = ("match_scales",)
"""What files written by later versions hold too (older files have none: the setting's default)."""
MAX_WIDTH = 2**16
"""The widest site an alignment file may name (a model of d_model 65536 is beyond any we align)."""
MAX_MODELS = 16


def load_alignment(path: Path | str) -> SavedAlignment:
    """The alignment saved at ``path``, rebuilt; a file that is not one is a one-line ConfigError.

    The file is data: it is read with ``weights_only`` (tensors, numbers, strings and containers), every
    key is checked against its form (the keys a file holds and no others; widths within
    [1, :data:`MAX_WIDTH`], each a size of its function's weights in the file; names as strings; the run's
    config plain data with no interpolation), and the function and layout are built from their settings
    (:func:`alignsearch.components.from_data`: trusted classes of their kind, known settings), never by
    Hydra: nothing in the file runs."""
    path = Path(path) if isinstance(path, str | Path) else path
    if not isinstance(path, Path) or not path.is_file():
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
    try:
        return _rebuilt(saved, path.name)
    except FileDataError as e:
        raise ConfigError("alignment", str(path), f"an alignment file whose content is data: {e}") from None
    except ConfigError as e:
        raise ConfigError("alignment", str(path), f"an alignment file of settings that work: {e}") from None


def _rebuilt(saved: dict[str, Any], file: str) -> SavedAlignment:
    """The alignment a loaded file describes, each of its values checked first (a FileDataError naming
    the key of the first that is refused)."""
    exact_keys(saved, file, "alignment", (*SAVED_KEYS, "variables", "sizes"), OPTIONAL_KEYS)
    state = saved["state_dict"]
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        raise FileDataError(file, "state_dict", "is not a non-empty mapping of names to tensors")
    config = plain_data(saved["config"], file, "config")
    if not isinstance(config, dict):
        raise FileDataError(file, "config", "is not a mapping")
    widths = _int_list(saved["widths"], file, "widths", 1, MAX_WIDTH)
    if not 1 <= len(widths) <= MAX_MODELS:
        raise FileDataError(file, "widths", f"names {len(widths)} models: expected 1 to {MAX_MODELS}")
    models = _text_list(saved["models"], file, "models", len(widths))
    sites = _text_list(saved["sites"], file, "sites", len(widths))
    variables = _text_list(saved["variables"], file, "variables")
    sizes = _int_list(saved["sizes"], file, "sizes", 1, min(widths))
    for key in ("keep_target", *OPTIONAL_KEYS):
        if not isinstance(saved.get(key, False), bool):
            raise FileDataError(file, key, f"is {saved[key]!r}: expected true or false")
    for i, width in enumerate(widths):
        shapes = [v.shape for k, v in state.items() if k.startswith(f"functions.{i}.")]
        if not any(width in shape for shape in shapes):
            raise FileDataError(
                file, f"widths[{i}]", f"is {width}, which no weights of function {i} in the file have"
            )
    matched = saved.get("match_scales", False)  # files written before the setting have none
    interchange = interchange_of(
        saved["function"], saved["layout"], widths, variables, sizes,
        keep_target=saved["keep_target"], match_scales=matched, builder=from_file(file),
    )  # fmt: skip
    try:
        interchange.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise FileDataError(
            file, "state_dict", f"does not fit the alignment it describes ({shorten(first, 160)})"
        ) from None
    return SavedAlignment(interchange.eval(), models, sites, variables, config, widths)


def from_file(file: str) -> Builder:
    """How a file's function and layout nodes are built (:func:`alignsearch.search.spec.interchange_of`):
    by :func:`alignsearch.components.from_data`, only as classes of their kind that are trusted, never
    through Hydra."""
    kinds = {"function": AlignmentFunction, "layout": FixedLayout}
    return Builder(
        function_class=lambda node: trusted_class(
            node, AlignmentFunction, "function", file, given=("width",)
        )[0],
        build=lambda node, kind, given: from_data(node, kinds[kind], kind, file, **given),
    )


def _int_list(value: Any, file: str, key: str, low: int, high: int) -> list[int]:
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in value
    ):
        raise FileDataError(
            file, key, f"is {shorten(repr(value), 80)}: expected a list of integers in [{low}, {high}]"
        )
    return list(value)


def _text_list(value: Any, file: str, key: str, length: int | None = None) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise FileDataError(file, key, f"is {shorten(repr(value), 80)}: expected a list of names")
    plain_data(list(value), file, key)
    if length is not None and len(value) != length:
        raise FileDataError(file, key, f"names {len(value)}: expected one per model ({length})")
    return list(value)
