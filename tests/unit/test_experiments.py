"""The paper presets (conf/experiment): each expands to its grid (a real sweep and its report:
``commands/test_reproduction.py``)."""

from __future__ import annotations

import math

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from tests.helpers import compose_config

PRESETS = {  # preset: (jobs at full size, jobs at small size)
    "das_grid": (5 * 5 * 3 * 2 * 2, 8),
    "upup_vs_updown": (5 * 2 * 3, 3),
    "transformer_layers": (5 * 3, 3),
    "mas_pairs": (2 * 3 * 3 * 2, 4),
    "iia_over_training": (5 * 10, 4),
}


def sweep_size(cfg) -> int:
    params = OmegaConf.to_container(cfg.hydra.sweeper.params, resolve=True)
    overrides = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return math.prod(len(list(o.sweep_string_iterator())) if o.is_sweep_override() else 1 for o in overrides)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("size", ["full", "small"])
def test_presets_expand_to_their_grids(preset, size) -> None:
    from hydra import compose, initialize_config_dir

    from tests.helpers import CONF

    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(
            "run_alignment", overrides=[f"+experiment={preset}", f"size={size}"], return_hydra_config=True
        )
    assert sweep_size(cfg) == PRESETS[preset][size == "small"]
    assert cfg.hydra.sweep.dir == f"multirun/{preset}/{size}"  # fixed: rerunning resumes the sweep


def test_causal_choices_pair_a_causal_model_with_its_variable() -> None:
    cfg = compose_config("run_alignment", ["+causal=upup_demo_count"])
    assert (cfg.alignment.causal_model, list(cfg.alignment.variables)) == ("upup", ["demo_count"])
