"""The paper presets (conf/experiment) and the report on a real sweep."""

from __future__ import annotations

import csv
import json
import math
import statistics

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from alignsearch import report
from tests.helpers import TINY_ALIGNMENT, compose_config, run_script

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


@pytest.mark.slow
def test_iia_over_training_preset_and_its_report(tmp_path) -> None:
    """The small IIA-over-training preset end to end (tiny models), then the report's plot and numbers."""
    zoo = tmp_path / "zoo"
    done = run_script(
        "run_alignment.py",
        "-m",
        "+experiment=iia_over_training",
        "size=small",
        "model.d_model=32",
        "hardware.progress_bar=false",
        *TINY_ALIGNMENT,
        zoo=zoo,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert sum(line.startswith("training ") for line in done.stdout.splitlines()) == 1
    snapshots = sorted(
        (zoo / "iia_over_training" / "small" / "multiobject" / "gru").glob("seed0*/snapshots/*.pt")
    )
    assert [p.stem for p in snapshots] == ["step150", "step300", "step50", "step600"]
    sweep = tmp_path / "multirun" / "iia_over_training" / "small"
    runs = [json.loads(p.read_text()) for p in sweep.glob("*/results.json")]
    assert sorted(r["config"]["snapshot"] for r in runs) == [50, 150, 300, 600]

    markdown, summary = report.report(sweep)
    by_step = {int(row["snapshot"]): row for row in summary}
    for run in runs:
        row = by_step[run["config"]["snapshot"]]
        assert row["iia_mean"] == pytest.approx(run["records"][0]["iia"])
        assert row["task_acc_mean"] == pytest.approx(run["task_accuracy"][0])
    iia = [r["records"][0]["iia"] for r in runs]
    acc = [r["task_accuracy"][0] for r in runs]
    expected = statistics.correlation(iia, acc) if len(set(iia)) > 1 and len(set(acc)) > 1 else None
    line = next(line for line in markdown.splitlines() if line.startswith("IIA against task accuracy"))
    assert line.endswith("(4 records)")
    if expected is not None:
        assert f"Pearson r = {expected:.3f}" in line
    assert (sweep / "plots" / "iia_over_training.png").stat().st_size > 1000
    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert len(rows) == 4
