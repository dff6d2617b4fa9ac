"""Controls beside an IIA, checked against cases whose answers are known: an untrained GRU cannot carry
the count; a random rotation of the whole state swaps the whole state; shuffled sources break the pairs.
Each control's divergence goes beside its IIA: in the records, ``results.json``, the tables and W&B."""

from __future__ import annotations

import json
import math

import pytest
import torch

from alignsearch import zoo
from alignsearch.cli.checks import model_request
from alignsearch.cli.plan import member_configs
from alignsearch.errors import ConfigError
from alignsearch.search.controls import ShuffledPairs, mean, random_subspace_scores, run_controls
from alignsearch.search.fit import build_pairs, fit_alignment
from alignsearch.search.records import AlignmentRecord, ControlScore, records_table
from alignsearch.settings import CONTROLS, AlignmentSettings, HardwareSettings
from tests.helpers import SMALL_GRU, TINY_ALIGNMENT, TINY_TRAINING, compose_config, plan_of

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
    for control in CONTROLS:  # the same measure as the record's own, measured for every control
        assert 0 <= record[f"divergence_control_{control}"] < math.inf, (control, record)


def test_a_random_rotation_of_the_whole_state_swaps_the_whole_state(trained_zoo, tmp_path) -> None:
    """With every unit in the block, any rotation swaps the whole vector: the random-subspace control
    equals the trained alignment's IIA (both are the whole-state swap)."""
    _, plan, entry = setup(trained_zoo, tmp_path, "alignment.variables=[full]", "n_units=32", *FAST)
    out = fit_alignment(plan, [entry.model], tmp_path, seed=0, hardware=HARDWARE)
    random = random_subspace_scores(plan, [entry.model], seed=0, hardware=HARDWARE)
    assert random["0>0/full"].iia == pytest.approx(out.records[0].iia, abs=1e-6)
    assert random["0>0/full"].iia >= 0.9
    # the same whole-state swap: the same intervened states, the same divergence
    assert random["0>0/full"].divergence == pytest.approx(out.records[0].divergence, abs=1e-4)


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


# -- the controls' divergence ----------------------------------------------------------------------------------
def test_every_control_of_a_das_run_has_its_divergence(tiny_zoo, tmp_path) -> None:
    """A DAS run with the three controls: each control's divergence (the record's site measure, on the
    validation pairs) is in the record, ``results.json``, the console table and the report."""
    from alignsearch import api
    from alignsearch.report import report

    gru = api.model(zoo_dir=tiny_zoo, overrides=TINY_TRAINING)
    result = api.align(
        gru, n_units=8, controls=list(CONTROLS), out_dir=tmp_path / "run", overrides=TINY_ALIGNMENT,
        max_steps=20, val_every=10, progress=False,
    )  # fmt: skip
    (record,) = result.records
    assert set(record.control_divergence) == set(record.controls) == set(CONTROLS)
    for control, value in record.control_divergence.items():
        assert value is not None and 0 <= value < math.inf, (control, value)
    # random_subspace: the mean over its draws of the divergence evaluate() measures, as for its IIA
    random = random_subspace_scores(result.plan, [gru.model], seed=0, hardware=HARDWARE)["0>0/count"]
    assert record.control_divergence["random_subspace"] == pytest.approx(random.divergence, abs=1e-6)
    assert record.controls["random_subspace"] == pytest.approx(random.iia, abs=1e-6)
    assert random.divergence > record.divergence_floor  # off the natural states: 0.35 against a floor of 0.14

    (saved,) = json.loads((tmp_path / "run" / "results.json").read_text())["records"]
    for control in CONTROLS:
        assert saved[f"divergence_control_{control}"] == record.control_divergence[control]
        assert saved[f"iia_control_{control}"] == record.controls[control]
    assert AlignmentRecord.from_json(saved) == record
    table = result.table()
    assert "control IIA / divergence: shuffled" in table
    low, high = record.control_interval(
        "shuffled"
    )  # the control's IIA with its interval, then its divergence
    shuffled = f"{record.controls['shuffled']:.3f} [{low:.3f}, {high:.3f}] / {record.control_divergence['shuffled']:.3f}"
    assert shuffled in table.splitlines()[2]
    markdown, summary = report(tmp_path / "run")
    (row,) = summary
    for control in CONTROLS:
        assert f"control divergence: {control}" in markdown
        assert row[f"divergence_control_{control}_mean"] == pytest.approx(record.control_divergence[control])


def test_a_record_with_control_divergences_round_trips() -> None:
    record = AlignmentRecord.from_json({"variable": "count", "iia": 0.9, "divergence": 0.3})
    scored = record.with_controls(
        {
            "shuffled": {"0>0/count": ControlScore(0.2, 0.55)},
            "untrained": {"0>1/count": ControlScore(0.0, 2.0)},
        }
    )
    assert scored.controls == {"shuffled": 0.2, "untrained": None}  # untrained has no track 0>0/count
    assert scored.control_divergence == {"shuffled": 0.55, "untrained": None}
    data = scored.to_json()
    assert data["iia_control_shuffled"] == 0.2 and data["divergence_control_shuffled"] == 0.55
    assert "divergence_control_untrained" in data and data["divergence_control_untrained"] is None
    assert list(data)[-4:] == [  # each control's divergence beside its IIA
        "iia_control_shuffled", "divergence_control_shuffled", "iia_control_untrained", "divergence_control_untrained"
    ]  # fmt: skip
    back = AlignmentRecord.from_json(json.loads(json.dumps(data)))
    assert back == scored and back.selectivity == pytest.approx(0.7)
    header = records_table([back]).splitlines()[0]
    assert "control IIA / divergence: shuffled" in header and "control IIA / divergence: untrained" in header
    assert "| 0.200 / 0.550 " in records_table([back]).splitlines()[2]


def test_a_record_written_before_control_divergences_reads_with_none(tmp_path) -> None:
    from alignsearch.report import report

    old = {"source": "a", "target": "a", "direction": "0>0", "variable": "count", "trained": True,
           "loss": "behaviour", "iia": 0.9, "iia_heldout": None, "iia_test": 0.8, "token_iia": 0.95,
           "iia_step0": 0.1, "iia_by_position": {"4": 0.9}, "divergence": 0.3, "divergence_floor": 0.1,
           "divergence_top": None, "divergence_top_floor": None, "iia_control_shuffled": 0.2}  # fmt: skip
    record = AlignmentRecord.from_json(old)
    assert record.controls == {"shuffled": 0.2} and record.control_divergence == {}
    assert record.to_json() == old  # written back as it was read: no divergence_control_ key
    assert "control divergence" not in records_table([record])
    (tmp_path / "results.json").write_text(json.dumps({"schema": 3, "config": {"seed": 0}, "records": [old]}))
    markdown, (row,) = report(tmp_path)
    assert "control: shuffled" in markdown and "control divergence" not in markdown  # nor in the note
    assert row["iia_control_shuffled_mean"] == 0.2 and "divergence_control_shuffled_mean" not in row


def test_the_divergence_of_a_random_subspace_is_the_mean_over_its_draws() -> None:
    assert mean([0.25, 0.5, 0.75]) == 0.5
    assert mean([0.25, None, 0.75]) is None  # a draw without a measure: none for the control


def test_w_and_b_summaries_carry_the_controls() -> None:
    from alignsearch.loggers import CONTROL_KEYS, INTERVAL_METRICS, summary_values
    from alignsearch.search.records import (
        CONTROL_DIVERGENCE_PREFIX,
        CONTROL_INTERVAL_PREFIXES,
        CONTROL_PREFIX,
        INTERVAL_FIELDS,
    )

    assert (CONTROL_PREFIX, *CONTROL_INTERVAL_PREFIXES, CONTROL_DIVERGENCE_PREFIX) == CONTROL_KEYS
    assert INTERVAL_METRICS == INTERVAL_FIELDS  # the loggers' copies of the records' keys

    record = AlignmentRecord.from_json(
        {
            "variable": "count",
            "iia": 0.9,
            "divergence": 0.3,
            "n_pairs": 50,
            "iia_low": 0.786,
            "iia_high": 0.957,
        }
    )
    scored = record.with_controls({"shuffled": {"0>0/count": ControlScore(0.2, 0.55, 50, 0.112, 0.33)}})
    assert scored.control_interval("shuffled") == (0.112, 0.33)
    assert summary_values([scored.to_json()]) == {
        "final/0>0/count/iia": 0.9,
        "final/0>0/count/divergence": 0.3,
        "final/0>0/count/n_pairs": 50,
        "final/0>0/count/iia_low": 0.786,
        "final/0>0/count/iia_high": 0.957,
        "final/0>0/count/iia_control_shuffled": 0.2,
        "final/0>0/count/n_pairs_control_shuffled": 50,
        "final/0>0/count/iia_low_control_shuffled": 0.112,
        "final/0>0/count/iia_high_control_shuffled": 0.33,
        "final/0>0/count/divergence_control_shuffled": 0.55,
    }
    # read back from its JSON form, the record is the same (the control's interval included)
    assert AlignmentRecord.from_json(scored.to_json()) == scored


@pytest.mark.parametrize("key", ["alignment.controls", "scan.top_controls"])
def test_a_control_a_model_cannot_have_is_refused_before_any_work(key: str) -> None:
    """``untrained`` needs an untrained form of every model; one without (a model brought as it is) is one
    line naming the setting, the controls and the model, for a run and for a scan's trained controls."""
    from types import SimpleNamespace

    from alignsearch.search.run import check_runnable_controls

    frozen = SimpleNamespace(name="my/frozen-model", untrained=None)
    with pytest.raises(ConfigError) as refused:
        check_runnable_controls([frozen], ["shuffled", "untrained"], key)
    assert str(refused.value) == (
        f"{key}=[shuffled,untrained] is not allowed: expected controls without untrained"
        " (my/frozen-model has no untrained form)"
    )
    check_runnable_controls([frozen], ["shuffled", "random_subspace"], key)  # these need no untrained form
    with pytest.raises(ConfigError, match=f"^{key}=\\[nope\\] is not allowed"):
        check_runnable_controls([frozen], ["nope"], key)
