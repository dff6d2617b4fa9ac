"""Controls beside an IIA, checked against cases whose answers are known: an untrained GRU cannot carry
the count; a random rotation of the whole state swaps the whole state; shuffled sources break the pairs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from alignsearch import zoo
from alignsearch.cli.checks import model_request
from alignsearch.cli.plan import member_configs
from alignsearch.errors import ConfigError
from alignsearch.search.controls import ShuffledPairs, random_subspace_scores, run_controls
from alignsearch.search.fit import build_pairs, fit_alignment
from alignsearch.settings import AlignmentSettings, HardwareSettings
from tests.helpers import SMALL_GRU, TINY_ALIGNMENT, compose_config, plan_of

HARDWARE = HardwareSettings(
    accelerator="cpu", devices=1, precision="32-true", threads=None, progress_bar=False
)
FAST = ["alignment.max_steps=150", "alignment.val_every=50", "alignment.n_train=2048"]


def setup(trained_zoo, tmp_path, *overrides: str):
    cfg = compose_config(
        "run_alignment",
        [
            f"paths.zoo_dir={trained_zoo}",
            f"paths.output_dir={tmp_path}",
            *SMALL_GRU,
            *TINY_ALIGNMENT,
            *overrides,
        ],
    )
    cfgs = member_configs(cfg)
    req = model_request(cfg)
    entry = zoo.load(req.path, req)
    return cfgs, plan_of(cfg, [entry]), entry


def test_controls_of_the_count_in_a_trained_gru(trained_zoo, tmp_path) -> None:
    cfgs, plan, entry = setup(trained_zoo, tmp_path, *FAST)
    out = fit_alignment(plan, [entry.model], tmp_path, seed=0, hardware=HARDWARE)
    scores = run_controls(
        plan, [entry.model], ("untrained", "random_subspace", "shuffled"), tmp_path, seed=0, hardware=HARDWARE,
        untrained=lambda: [model_request(c).model for c in cfgs],
    )  # fmt: skip
    (record,) = [r.with_controls(scores).to_json() for r in out.records]
    assert record["iia"] >= 0.5, record  # 0.59 here (150 steps), from 0.07 at step 0
    assert record["iia_control_untrained"] <= 0.1  # an untrained GRU cannot do the task at all
    assert record["iia_control_random_subspace"] <= record["iia"] - 0.3
    assert record["iia_control_shuffled"] <= record["iia"] - 0.3
    assert (tmp_path / "controls" / "untrained" / "checkpoints").is_dir()  # trained controls resume


def test_a_random_rotation_of_the_whole_state_swaps_the_whole_state(trained_zoo, tmp_path) -> None:
    """With every unit in the block, any rotation swaps the whole vector: the random-subspace control
    equals the trained alignment's IIA (both are the whole-state swap)."""
    _, plan, entry = setup(trained_zoo, tmp_path, "alignment.variables=[full]", "n_units=32", *FAST)
    out = fit_alignment(plan, [entry.model], tmp_path, seed=0, hardware=HARDWARE)
    random = random_subspace_scores(plan, [entry.model], seed=0, hardware=HARDWARE)
    assert random["0>0/full"] == pytest.approx(out.records[0].iia, abs=1e-6)
    assert random["0>0/full"] >= 0.9


def test_shuffled_pairs_give_each_pair_another_pairs_source(trained_zoo, tmp_path) -> None:
    _, plan, entry = setup(trained_zoo, tmp_path)
    train, evals, _ = build_pairs(plan, [entry.model], seed=0)
    s_train, s_evals, _ = ShuffledPairs(plan).build(plan.tracks(), [entry.model], ["layer.0"], seed=0)
    (name,) = train
    real, mixed = train[name], s_train[name]
    assert torch.equal(real["ids"], mixed["ids"]) and torch.equal(real["pos"], mixed["pos"])
    moved = (real["src"] != mixed["src"]).any(1)
    assert moved.float().mean() > 0.9  # almost every row got another row's vector
    assert sorted(map(tuple, mixed["src"].tolist())) == sorted(map(tuple, real["src"].tolist()))
    assert not torch.equal(s_evals["val"][name]["src"], evals["val"][name]["src"])


def test_controls_are_checked_settings() -> None:
    with pytest.raises(
        ConfigError, match=r"^alignment\.controls=\[random\] is not allowed: expected a list of"
    ):
        AlignmentSettings.parse(compose_config("run_alignment", ["alignment.controls=[random]"]).alignment)
    with pytest.raises(ConfigError, match="distinct controls"):
        AlignmentSettings.parse(
            compose_config("run_alignment", ["alignment.controls=[shuffled,shuffled]"]).alignment
        )


@pytest.mark.slow
def test_controls_through_the_command_line_and_the_report(trained_zoo, tmp_path) -> None:
    from tests.helpers import run_script

    result = run_script(
        "run_alignment.py", *SMALL_GRU, *TINY_ALIGNMENT, *FAST, "alignment.controls=[random_subspace,shuffled]",
        zoo=trained_zoo, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (path,) = tmp_path.glob("outputs/run_alignment/*/results.json")
    (record,) = json.loads(path.read_text())["records"]
    assert {"iia_control_random_subspace", "iia_control_shuffled"} <= set(record)
    report = subprocess.run(
        [sys.executable, "-m", "alignsearch.report", str(path.parent)], capture_output=True, text=True
    )
    assert report.returncode == 0, report.stderr
    markdown = (path.parent / "report.md").read_text()
    assert "control: random_subspace" in markdown and "selectivity" in markdown
    assert "the last two are the informative ones" in markdown.lower()
