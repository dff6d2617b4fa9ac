"""One type for the whole ``results.json`` (search/results.py): what the run core writes reads back as it
was, byte for byte; files of every older form read (and their records, written before the schema); a file
that is not a run's results is one line naming the file and the key; the status words come from one
enum."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from alignsearch.file_data import FileDataError
from alignsearch.search.records import SCHEMA, AlignmentRecord
from alignsearch.search.results import RunResults, RunStatus

GRU = "multiobject/gru/seed0-d_model32-batch_size32-max_steps40-val_every20-n_val64"
# results.json files of schema 4 as the code wrote them (tiny runs of run_alignment.py; only
# iia_by_position shortened, and a skipped row added to the text run's data): a task model's DAS with
# the three controls, and a language model's DAS on a pairs file (with ``data``); SCHEMA_5_* below are the
# same files in today's form
WRITTEN_DAS_WITH_CONTROLS: dict[str, Any] = {
    "schema": 4,
    "config": {
        "task": "multiobject", "model": "gru", "alignment": "das", "seed": 0, "layer": 0, "site": "layer.0",
        "n_units": 8, "variables": ["count"], "causal_model": "updown", "stepwise": False, "lr": 0.01,
        "batch_size": 32, "max_steps": 20, "function": "Rotation", "layout": "FixedLayout", "snapshot": None,
        "cl_weight": 0.0, "cl_space": "full", "model.d_model": 32, "training.batch_size": 32,
        "training.max_steps": 40, "training.val_every": 20, "training.n_val": 64,
    },
    "steps": 20,
    "best_step": 10,
    "train_seconds": 0.77,
    "learned_units": {"count": 8.0},
    "task_accuracy": [0.0],
    "records": [
        {
            "source": GRU, "target": GRU, "direction": "0>0", "variable": "count", "trained": True,
            "loss": "behaviour", "iia": 0.0, "iia_heldout": 0.0, "iia_test": 0.0, "token_iia": 0.9035418033599854,
            "iia_step0": 0.0, "iia_by_position": {"1": 0.0, "2": 0.0, "21": 0.0, "36": 0.0},
            "divergence": 0.32287362217903137, "divergence_floor": 0.13593244552612305, "divergence_top": None,
            "divergence_top_floor": None, "iia_control_untrained": 0.0,
            "divergence_control_untrained": 0.3407403826713562, "iia_control_random_subspace": 0.0,
            "divergence_control_random_subspace": 0.35206348697344464, "iia_control_shuffled": 0.0,
            "divergence_control_shuffled": 0.2949870526790619,
        }
    ],
    "identity": {
        "models": [
            {"name": GRU, "weights_sha256": "0657e41c61099bbb0561d0f6596c372d414c4582780934ffca834809b7e7c28e"}
        ],
        "settings_sha256": "266fc04652a63fb0d42ea96c15dae84a7b2970555b25c0b033c379b0a30a1fd5",
    },
    "seconds": {
        "steps": 0.629, "validation": 0.131, "evaluation": 0.075, "pairs": 0.349, "other": 0.133,
        "controls": 2.57, "task_accuracy": 0.173,
    },
}  # fmt: skip
WRITTEN_TEXT: dict[str, Any] = {
    "schema": 4,
    "config": {
        "task": "count", "model": "lm_lm", "alignment": "das", "seed": 0, "layer": 0, "site": "layer.0",
        "n_units": 8, "variables": ["count"], "causal_model": None, "stepwise": False, "lr": 0.01,
        "batch_size": 128, "max_steps": 40, "function": "Rotation", "layout": "FixedLayout", "snapshot": None,
        "cl_weight": 0.0, "cl_space": "full", "data": "/tmp/rr/count.jsonl", "model.path": "/tmp/rr/lm",
        "model.dtype": "float32",
    },
    "steps": 40,
    "best_step": 40,
    "train_seconds": 1.68,
    "learned_units": {"count": 8.0},
    "task_accuracy": None,
    "records": [
        {
            "source": "lm_lm", "target": "lm_lm", "direction": "0>0", "variable": "count", "trained": True,
            "loss": "behaviour", "iia": 0.9666666388511658, "iia_heldout": None, "iia_test": 0.8999999761581421,
            "token_iia": 0.9666666388511658, "iia_step0": 0.0, "iia_by_position": {"4": 1.0, "6": 0.5},
            "divergence": 0.503818929195404, "divergence_floor": 0.5172911882400513,
            "divergence_top": 0.3568389415740967, "divergence_top_floor": 0.4783308506011963,
        }
    ],
    "identity": {
        "models": [
            {"name": "lm_lm", "weights_sha256": "01f17d43071a4ae443cb5c611df9d1b534a4df0a1e9f7301e3be3dab9acf8cf4"}
        ],
        "data_sha256": "c7b301ffc4257d7ba7fa035b626e638d53aa907881f181da4d7ae62b92e31168",
        "settings_sha256": "48538d16e10dd2219dda314706e4a563139d73e2f4ccd92377faaadfc47c3eae",
    },
    "seconds": {"steps": 1.593, "validation": 0.05, "evaluation": 0.016, "pairs": 0.079, "other": 0.113,
                "task_accuracy": 0.0},
    "data": {
        "kind": "pairs", "rows": 300, "pairs": {"train": 240, "val": 30, "test": 30},
        "skipped": [{"line": 12, "reason": "no target"}], "duplicates": 0, "natural_targets": 0,
    },
}  # fmt: skip


def with_intervals(written: dict[str, Any], intervals: dict[str, Any]) -> dict[str, Any]:
    """A schema-4 file in schema 5's form: each record with its pairs and intervals, written after the
    divergence measures and before the controls (in :data:`~alignsearch.search.records.INTERVAL_FIELDS`'
    order)."""
    from alignsearch.search.records import INTERVAL_FIELDS

    records = []
    for record in written["records"]:
        base = {k: v for k, v in record.items() if not k.startswith(("iia_control_", "divergence_control_"))}
        controls = {k: v for k, v in record.items() if k not in base}
        records.append({**base, **{k: intervals[k] for k in INTERVAL_FIELDS}, **controls})
    return {**written, "schema": 5, "records": records}


# the Wilson intervals of 0 of 128 pairs, 29 and 27 of 30, 0 of 30 (worked out by hand: issue 31); token
# IIA intervals of a plausible width (a bootstrap's depend on the pairs themselves, which these files lack)
SCHEMA_5_DAS = with_intervals(
    WRITTEN_DAS_WITH_CONTROLS,
    {"n_pairs": 128, "iia_low": 0.0, "iia_high": 0.029137, "token_iia_low": 0.89114, "token_iia_high": 0.914885,
     "iia_step0_low": 0.0, "iia_step0_high": 0.029137, "n_pairs_heldout": 128, "iia_heldout_low": 0.0,
     "iia_heldout_high": 0.029137, "n_pairs_test": 128, "iia_test_low": 0.0, "iia_test_high": 0.029137},
)  # fmt: skip
SCHEMA_5_TEXT = with_intervals(
    WRITTEN_TEXT,
    {"n_pairs": 30, "iia_low": 0.833296, "iia_high": 0.994091, "token_iia_low": 0.9, "token_iia_high": 1.0,
     "iia_step0_low": 0.0, "iia_step0_high": 0.113513, "n_pairs_heldout": None, "iia_heldout_low": None,
     "iia_heldout_high": None, "n_pairs_test": 30, "iia_test_low": 0.743789, "iia_test_high": 0.9654},
)  # fmt: skip


def with_control_intervals(
    written: dict[str, Any], trials: dict[str, tuple[int, float, float]]
) -> dict[str, Any]:
    """A schema-5 file in schema 6's form: each control's trials and interval after its IIA."""
    records = []
    for record in written["records"]:
        out: dict[str, Any] = {}
        for key, value in record.items():
            out[key] = value
            name = key.removeprefix("iia_control_")
            if key.startswith("iia_control_") and name in trials:
                n, low, high = trials[name]
                out |= {
                    f"n_pairs_control_{name}": n,
                    f"iia_low_control_{name}": low,
                    f"iia_high_control_{name}": high,
                }
        records.append(out)
    return {**written, "schema": 6, "records": records}


# the Wilson intervals of 0 of 128 pairs (untrained, shuffled) and of 0 of 384 (random_subspace: 3 draws
# of the 128 pairs pooled): [0, 1.959964^2 / (n + 1.959964^2)] = [0, 0.029137] and [0, 0.009903]
SCHEMA_6_DAS = with_control_intervals(
    SCHEMA_5_DAS,
    {
        "untrained": (128, 0.0, 0.029137),
        "random_subspace": (384, 0.0, 0.009903),
        "shuffled": (128, 0.0, 0.029137),
    },
)
SCHEMA_6_TEXT = with_control_intervals(SCHEMA_5_TEXT, {})


def with_position_intervals(
    written: dict[str, Any], pairs: dict[str, int], bounds: dict[str, list[float]]
) -> dict[str, Any]:
    """A schema-6 file in schema 7's form: its record's pairs and interval at each position, after the
    other intervals and before the controls."""
    (record,) = written["records"]
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key.startswith("iia_control_") and "n_pairs_by_position" not in out:
            out |= {"n_pairs_by_position": pairs, "iia_by_position_interval": bounds}
        out[key] = value
    out.setdefault("n_pairs_by_position", pairs)
    out.setdefault("iia_by_position_interval", bounds)
    return {**written, "schema": 7, "records": [out]}


# Wilson's intervals of 0 of 32 pairs at each of four positions: [0, 1.959964^2 / (32 + 1.959964^2)]; of
# 28 of 28 ([28 / (28 + 1.959964^2), 1]) and of 1 of 2 (0.5 -+ 0.405469), worked out by hand
SCHEMA_7_DAS = with_position_intervals(
    SCHEMA_6_DAS,
    dict.fromkeys(("1", "2", "21", "36"), 32),
    {p: [0.0, 0.107179] for p in ("1", "2", "21", "36")},
)
SCHEMA_7_TEXT = with_position_intervals(
    SCHEMA_6_TEXT, {"4": 28, "6": 2}, {"4": [0.879357, 1.0], "6": [0.094531, 0.905469]}
)


def as_written(results: dict[str, Any]) -> str:
    """The text ``atomic.write_json`` writes for ``results``."""
    return json.dumps(results, indent=2, sort_keys=False) + "\n"


# -- what is written today reads back as it was ----------------------------------------------------------------
@pytest.mark.parametrize("written", [SCHEMA_7_DAS, SCHEMA_7_TEXT], ids=["das_controls", "text"])
def test_results_of_todays_form_round_trip_byte_for_byte(written: dict[str, Any]) -> None:
    results = RunResults.from_json(written)
    assert results.to_json() == written
    assert as_written(results.to_json()) == as_written(written)  # the same keys in the same order
    assert results.records[0].variable == "count" and results.config["seed"] == 0


def test_schema_6_reads_without_position_intervals_and_writes_its_records_as_they_were() -> None:
    results = RunResults.from_json(SCHEMA_6_TEXT)
    (record,) = results.records
    assert record.n_pairs_by_position == {} and record.iia_by_position_interval == {}
    assert results.to_json() == {**SCHEMA_6_TEXT, "schema": SCHEMA}  # no interval made up
    (seven,) = RunResults.from_json(SCHEMA_7_TEXT).records
    assert seven.iia_by_position_interval == {"4": (0.879357, 1.0), "6": (0.094531, 0.905469)}


def test_schema_5_reads_without_control_intervals_and_writes_its_records_as_they_were() -> None:
    results = RunResults.from_json(SCHEMA_5_DAS)
    (record,) = results.records
    assert record.controls == {"untrained": 0.0, "random_subspace": 0.0, "shuffled": 0.0}
    assert all(record.control_interval(name) is None for name in record.controls)
    assert results.to_json() == {**SCHEMA_5_DAS, "schema": SCHEMA}  # no interval made up
    assert RunResults.from_json(SCHEMA_6_DAS).records[0].control_interval("random_subspace") == (
        0.0,
        0.009903,
    )


@pytest.mark.parametrize("written", [WRITTEN_DAS_WITH_CONTROLS, WRITTEN_TEXT], ids=["das_controls", "text"])
def test_schema_4_reads_without_intervals_and_writes_its_records_as_they_were(
    written: dict[str, Any],
) -> None:
    from alignsearch.search.records import INTERVALS

    results = RunResults.from_json(written)
    (record,) = results.records
    assert all(record.interval(m) is None and record.pairs(m) is None for m in INTERVALS)
    assert results.to_json() == {**written, "schema": SCHEMA}  # no pairs or interval made up


def test_the_run_core_writes_what_reads_back_and_finds_it_again(tiny_zoo: Path, tmp_path: Path) -> None:
    from alignsearch import api
    from tests.helpers import TINY_ALIGNMENT, TINY_TRAINING

    entry = api.model(zoo_dir=tiny_zoo, overrides=TINY_TRAINING)
    out = tmp_path / "run"
    first = api.align(entry, n_units=8, out_dir=out, overrides=TINY_ALIGNMENT, max_steps=20, val_every=10)
    text = (out / "results.json").read_text()
    read = RunResults.read(out / "results.json")
    assert as_written(read.to_json()) == text  # byte for byte
    assert read == first.results and first.status == RunStatus.DONE
    assert json.loads(text)["schema"] == SCHEMA and list(json.loads(text)) == list(read.to_json())
    again = api.align(entry, n_units=8, out_dir=out, overrides=TINY_ALIGNMENT, max_steps=20, val_every=10)
    assert again.status == RunStatus.ALREADY_DONE and again.results == read
    assert again.records == first.records and again.config == first.config
    assert (out / "results.json").read_text() == text  # found, not written again


def test_a_real_runs_iias_carry_their_pairs_and_intervals(tiny_zoo: Path, tmp_path: Path) -> None:
    """Issue 31: every IIA of a tiny run's results.json has its number of pairs (the split's size, the
    pairs drawn again here) and a 95% interval around it: Wilson's, recomputed here from the formula."""
    from alignsearch import api
    from tests.helpers import TINY_ALIGNMENT, TINY_TRAINING, run_pairs

    entry = api.model(zoo_dir=tiny_zoo, overrides=TINY_TRAINING)
    out = tmp_path / "run"
    api.align(
        entry, n_units=8, out_dir=out, overrides=TINY_ALIGNMENT, max_steps=20, val_every=10,
        controls=["random_subspace", "shuffled"],
    )  # fmt: skip
    written = json.loads((out / "results.json").read_text())
    assert written["schema"] == SCHEMA == 7
    (record,) = written["records"]
    z = 1.959963985  # the normal distribution's 0.975 quantile
    draws = 3  # random_subspace: its draws' interventions on the validation pairs, pooled
    for metric, pairs, split, times in (
        ("iia", "n_pairs", "val", 1),
        ("iia_heldout", "n_pairs_heldout", "heldout", 1),
        ("iia_test", "n_pairs_test", "test", 1),
        ("iia_step0", "n_pairs", "val", 1),
        ("iia_control_shuffled", "n_pairs_control_shuffled", "val", 1),
        ("iia_control_random_subspace", "n_pairs_control_random_subspace", "val", draws),
    ):
        n, iia = record[pairs], record[metric]
        assert n == times * len(run_pairs(entry.task, split=split, n=128)) > 0, metric  # TINY_ALIGNMENT: 128
        k = round(iia * n)
        assert abs(k - iia * n) < 1e-3, metric  # a share of pairs
        centre, half = (k + z * z / 2) / (n + z * z), z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
        low, high = (
            (record[f"iia_low_control_{control}"], record[f"iia_high_control_{control}"])
            if (control := metric.removeprefix("iia_control_")) != metric
            else (record[f"{metric}_low"], record[f"{metric}_high"])
        )
        assert low <= iia <= high, metric
        assert (low, high) == pytest.approx((max(0.0, centre - half), min(1.0, centre + half)), abs=2e-6), (
            metric
        )
    # the IIA at each base position: that position's pairs, and Wilson's interval over them (schema 7)
    positions = run_pairs(entry.task, split="val", n=128).base_pos.tolist()
    assert record["n_pairs_by_position"] == {str(p): positions.count(p) for p in sorted(set(positions))}
    for pos, n in record["n_pairs_by_position"].items():
        k = round(record["iia_by_position"][pos] * n)
        centre, half = (k + z * z / 2) / (n + z * z), z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
        assert record["iia_by_position_interval"][pos] == pytest.approx(
            [max(0.0, centre - half), min(1.0, centre + half)], abs=2e-6
        ), pos
    low, high = record["token_iia_low"], record["token_iia_high"]
    assert 0 <= low <= record["token_iia"] <= high <= 1 and high - low < 0.2  # a bootstrap over 128 pairs
    # which validation pairs it got right, one character a pair, and a digest of the pairs' inputs
    assert len(record["pair_hits"]) == record["n_pairs"] and set(record["pair_hits"]) <= {"0", "1"}
    assert record["pair_hits"].count("1") == round(record["iia"] * record["n_pairs"])
    assert len(record["pairs_sha256"]) == 16 and int(record["pairs_sha256"], 16) >= 0
    assert RunResults.read(out / "results.json").records[0].interval("token_iia") == (low, high)


# -- older forms ------------------------------------------------------------------------------------------------
SCHEMA_1_FIRST = {  # the first form (no schema, no identity, no task accuracy; records without direction)
    "config": {"task": "multiobject", "model": "gru", "alignment": "das", "seed": 0, "layer": 0},
    "steps": 100,
    "best_step": 80,
    "train_seconds": 3.5,
    "learned_units": {"count": 16.0},
    "records": [
        {"source": "gru/seed0", "target": "gru/seed0", "variable": "count", "trained": True, "iia": 0.9,
         "iia_heldout": None, "iia_test": 0.85, "token_iia": 0.95, "iia_step0": 0.1}
    ],
}  # fmt: skip
SCHEMA_1_LATE = {  # still no schema: with task accuracy, identity, MAS directions and controls' IIA
    "config": {"task": "multiobject", "model": "gru", "alignment": "mas", "seed": 0},
    "steps": 100,
    "best_step": 100,
    "train_seconds": 3.5,
    "learned_units": {"count": 8.0},
    "task_accuracy": [0.99, 0.97],
    "records": [
        {"source": "gru/seed0", "target": "gru/seed1", "direction": "0>1", "variable": "count",
         "trained": False, "loss": None, "iia": 0.5, "iia_heldout": 0.4, "iia_test": 0.45, "token_iia": 0.8,
         "iia_step0": 0.05, "iia_by_position": {"3": 0.5}, "iia_control_shuffled": 0.1}
    ],
    "identity": {"models": [{"name": "gru/seed0", "weights_sha256": "ab"}], "settings_sha256": "cd"},
}  # fmt: skip
SCHEMA_2 = {  # schema, records of the run core; no seconds, no divergence
    "schema": 2,
    "config": {"task": "multiobject", "model": "gru", "alignment": "das", "seed": 1},
    "steps": 50,
    "best_step": 40,
    "train_seconds": 2.0,
    "learned_units": {"count": 8.0},
    "task_accuracy": [0.99],
    "records": [
        {"source": "a", "target": "a", "direction": "0>0", "variable": "count", "trained": True,
         "loss": "behaviour", "iia": 0.8, "iia_heldout": None, "iia_test": 0.7, "token_iia": 0.9,
         "iia_step0": 0.1, "iia_by_position": {}, "cl_loss": 0.3}
    ],
    "identity": {"models": [{"name": "a", "weights_sha256": "ef"}], "settings_sha256": "01"},
}  # fmt: skip
SCHEMA_3 = {  # seconds and the divergence measures; the controls' IIA without their divergence
    **SCHEMA_2,
    "schema": 3,
    "config": {**SCHEMA_2["config"], "seed": 2},
    "records": [
        {**SCHEMA_2["records"][0], "divergence": 0.3, "divergence_floor": 0.1, "divergence_top": None,
         "divergence_top_floor": None, "iia_control_random_subspace": 0.05}
    ],
    "seconds": {"pairs": 0.1, "steps": 1.5},
}  # fmt: skip


def test_the_first_form_reads_with_defaults_and_writes_the_current_one() -> None:
    results = RunResults.from_json(SCHEMA_1_FIRST)
    (record,) = results.records
    assert (record.direction, record.loss, record.iia_by_position, record.divergence) == (
        "0>0",
        None,
        {},
        None,
    )
    assert (results.steps, results.best_step, results.learned_units) == (100, 80, {"count": 16.0})
    assert results.identity is None and results.task_accuracy is None and results.seconds is None
    current = results.to_json()
    assert current["schema"] == SCHEMA and list(current) == [k for k in current if k != "data"]
    assert current["records"][0]["divergence"] is None and current["identity"] is None
    assert RunResults.from_json(current) == results  # the current form of it reads as the same results


def test_older_forms_read_what_they_hold() -> None:
    late = RunResults.from_json(SCHEMA_1_LATE)
    (record,) = late.records
    assert (record.direction, record.trained, record.controls) == ("0>1", False, {"shuffled": 0.1})
    assert late.task_accuracy == [0.99, 0.97] and late.identity["models"][0]["name"] == "gru/seed0"
    assert late.headline_iia is None  # no trained record
    two = RunResults.from_json(SCHEMA_2)
    assert two.seconds is None and two.records[0].cl_loss == 0.3 and two.records[0].divergence is None
    assert two.headline_iia == 0.8
    three = RunResults.from_json(SCHEMA_3)
    (record,) = three.records
    assert record.controls == {"random_subspace": 0.05} and record.control_divergence == {}
    assert three.seconds == {"pairs": 0.1, "steps": 1.5} and record.divergence == 0.3
    assert three.to_json()["records"][0] == SCHEMA_3["records"][0]  # no divergence_control_ key made up


def test_the_report_reads_every_form(tmp_path: Path) -> None:
    from alignsearch import report

    forms = {"first": SCHEMA_1_FIRST, "two": SCHEMA_2, "three": SCHEMA_3, "four": WRITTEN_DAS_WITH_CONTROLS,
             "five": {**SCHEMA_5_TEXT, "config": {**SCHEMA_5_TEXT["config"], "seed": 7}}}  # fmt: skip
    for name, results in forms.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(results))
    collected = report.collect(tmp_path)
    assert collected.unreadable == [] and len(collected.rows) == 5
    _, summary = report.report(tmp_path)
    assert sorted((round(row["iia_mean"], 3), row["n"]) for row in summary) == [
        (0.0, 1),
        (0.8, 2),
        (0.9, 1),
        (0.967, 1),
    ]
    (text,) = [row for row in summary if row["model"] == "lm_lm"]  # one run: its interval over its pairs
    assert (text["iia_low"], text["iia_high"], text["iia_pairs"]) == (0.833296, 0.994091, 30)


# -- a file that is not a run's results -------------------------------------------------------------------------
def with_record(**changes: Any) -> dict[str, Any]:
    record = {**WRITTEN_DAS_WITH_CONTROLS["records"][0], **changes}
    return {**WRITTEN_DAS_WITH_CONTROLS, "records": [record]}


MALFORMED = {
    "a list": ([1, 2], "the file is a list: expected a JSON object"),
    "no records": ({"config": {}}, "records is missing"),
    "no config": ({"records": [{"variable": "v", "iia": 0.5}]}, "config is missing"),
    "records not a list": ({"config": {}, "records": {"variable": "v"}}, "records is an object: expected a list"),
    "empty records": ({"config": {}, "records": []}, "records is empty"),
    "config a list": ({"config": [], "records": [{"variable": "v", "iia": 1}]}, "config is a list"),
    "unknown key": ({**WRITTEN_TEXT, "status": "done"}, "status is not a key of results.json (known: schema,"),
    "newer schema": ({**WRITTEN_TEXT, "schema": SCHEMA + 1}, f"schema is {SCHEMA + 1}: this alignsearch reads"),
    "schema text": ({**WRITTEN_TEXT, "schema": "4"}, "schema is '4': expected a version from 1 to"),
    "record a string": ({"config": {}, "records": ["count"]}, "records[0] is a string: expected a record"),
    "record lacks": ({"config": {}, "records": [{"iia": 1.0}]}, "records[0] lacks variable"),
    "iia text": (with_record(iia="0.9"), "records[0].iia is '0.9': expected a number"),
    "iia true": (with_record(iia=True), "records[0].iia is True: expected a number"),
    "trained text": (with_record(trained="yes"), "records[0].trained is 'yes': expected true or false"),
    "direction": (with_record(direction="0-1"), "records[0].direction is '0-1': expected source>target"),
    "variable": (with_record(variable=3), "records[0].variable is 3: expected a string"),
    "loss": (with_record(loss=1), "records[0].loss is 1: expected a string"),
    "heldout": (with_record(iia_heldout="high"), "records[0].iia_heldout is 'high': expected a number or null"),
    "by position": (with_record(iia_by_position=[0.5]), "records[0].iia_by_position is [0.5]: expected an object"),
    "control": (with_record(iia_control_shuffled="x"), "records[0].iia_control_shuffled is 'x': expected a number"),
    "record key": (with_record(accuracy=1.0), "records[0].accuracy is not a key of a record (known: source,"),
    "no pairs": (with_record(n_pairs=0), "records[0].n_pairs is 0: expected a number of pairs (1 or more)"),
    "pairs text": (with_record(n_pairs="128"), "records[0].n_pairs is '128': expected a number of pairs"),
    "pairs fraction": (with_record(n_pairs_test=1.5), "records[0].n_pairs_test is 1.5: expected a number of"),
    "bound text": (with_record(iia_low="0.1"), "records[0].iia_low is '0.1': expected a share from 0 to 1 or"),
    "bound above 1": (with_record(token_iia_high=1.5), "records[0].token_iia_high is 1.5: expected a share"),
    "bound below 0": (with_record(iia_test_low=-0.1), "records[0].iia_test_low is -0.1: expected a share"),
    "one bound": (with_record(iia_low=0.1), "records[0].iia_low is 0.1 and iia_high None: expected both"),
    "bounds crossed": (with_record(iia_heldout_low=0.6, iia_heldout_high=0.4),
                       "records[0].iia_heldout_low is 0.6 and iia_heldout_high 0.4: expected both or neither, low <= high"),
    "position pairs": (with_record(n_pairs_by_position={"4": 0}),
                       "records[0].n_pairs_by_position is {'4': 0}: expected an object of position: pairs (1 or more)"),
    "position interval": (with_record(iia_by_position_interval={"4": [0.9, 0.8]}),
                          "records[0].iia_by_position_interval is {'4': [0.9, 0.8]}: expected an object of position: [low, high]"),
    "position bound": (with_record(iia_by_position_interval={"4": [0.9, 1.2]}),
                       "records[0].iia_by_position_interval is {'4': [0.9, 1.2]}: expected"),
    "steps": ({**WRITTEN_TEXT, "steps": 1.5}, "steps is 1.5: expected a whole number of steps"),
    "train_seconds": ({**WRITTEN_TEXT, "train_seconds": "1 s"}, "train_seconds is '1 s': expected a number"),
    "learned_units": ({**WRITTEN_TEXT, "learned_units": {"count": "8"}}, "learned_units is {'count': '8'}: expected"),
    "task_accuracy": ({**WRITTEN_TEXT, "task_accuracy": ["high"]}, "task_accuracy is ['high']: expected a list of"),
    "identity": ({**WRITTEN_TEXT, "identity": ["a"]}, "identity is a list: expected a JSON object"),
    "identity models": ({**WRITTEN_TEXT, "identity": {"models": ["a"]}}, "identity.models is ['a']: expected a list"),
    "seconds": ({**WRITTEN_TEXT, "seconds": {"steps": None}}, "seconds is {'steps': None}: expected an object of"),
    "data": ({**WRITTEN_TEXT, "data": "pairs.jsonl"}, "data is a string: expected a JSON object"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_file_is_one_line_naming_the_file_and_the_key(name: str) -> None:
    data, expected = MALFORMED[name]
    with pytest.raises(FileDataError) as error:
        RunResults.from_json(data, "runs/a/results.json")
    line = str(error.value)
    assert "\n" not in line and line.startswith(f"runs/a/results.json: {expected}"), line


def test_a_file_that_is_not_json_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text('{"config": {}, "records": [')
    with pytest.raises(FileDataError) as error:
        RunResults.read(path)
    assert str(error.value).startswith(f"{path}: the file is not JSON (") and "\n" not in str(error.value)


def test_the_run_core_moves_an_unreadable_results_file_aside(tmp_path: Path, capsys) -> None:
    from alignsearch.search.run import previous_results

    (tmp_path / "results.json").write_text(json.dumps(with_record(iia="high")))
    identity = WRITTEN_DAS_WITH_CONTROLS["identity"]
    assert previous_results(tmp_path, identity) is None
    assert (tmp_path / "superseded" / "1" / "results.json").is_file() and not (
        tmp_path / "results.json"
    ).exists()
    (line,) = capsys.readouterr().out.splitlines()
    assert "held results or checkpoints of an unreadable results.json (" in line
    assert "records[0].iia is 'high': expected a number" in line and "running again" in line


# -- the status words -------------------------------------------------------------------------------------------
def test_status_words_are_the_printed_ones() -> None:
    from alignsearch.cli import sweep
    from alignsearch.search import sweep_records

    assert [str(s) for s in RunStatus] == ["done", "already done", "failed", "interrupted", "requeued"]
    assert f"{RunStatus.ALREADY_DONE}: x" == "already done: x" and json.dumps(RunStatus.DONE) == '"done"'
    assert (
        "failed" in sweep.UNFINISHED and "interrupted" in sweep.UNFINISHED and "done" not in sweep.UNFINISHED
    )
    row = {"job": "seed=0", "status": RunStatus.ALREADY_DONE, "iia": "0.5000"}
    assert sweep.job_line(2, row) == "[job 2] already done: seed=0: IIA 0.500"
    assert sweep_records.summary_text([row]).splitlines()[1] == "seed=0,already done,,0.5000,,,"


def test_a_sweep_line_shows_the_mean_iia_of_the_trained_records() -> None:
    from alignsearch.cli import sweep

    records = [
        AlignmentRecord.from_json({"variable": "count", "iia": 0.6}),
        AlignmentRecord.from_json({"variable": "count", "direction": "0>1", "trained": False, "iia": 0.0}),
        AlignmentRecord.from_json({"variable": "phase", "iia": 1.0}),
    ]
    assert RunResults({}, records).headline_iia == pytest.approx(0.8)
    assert sweep.headline_iia({"iia": 0.8, "val_trial_acc": 0.1}) == 0.8
    assert sweep.headline_iia({"val_trial_acc": 0.9}) == 0.9  # a task model's job


def test_records_of_results_written_before_the_schema_read_the_same() -> None:
    from alignsearch.search.records import DIVERGENCE_KEYS, AlignmentRecord

    old = {"source": "a", "target": "a", "direction": "0>0", "variable": "count", "trained": True,
           "loss": "behaviour", "iia": 0.9, "iia_heldout": None, "iia_test": 0.8, "token_iia": 0.95,
           "iia_step0": 0.1, "iia_by_position": {"4": 0.9}, "iia_control_shuffled": 0.2}  # fmt: skip
    record = AlignmentRecord.from_json(old)
    assert record.controls == {"shuffled": 0.2} and record.selectivity == pytest.approx(0.7)
    assert record.divergence is None  # not measured before schema 3
    assert record.to_json() == {**old, **dict.fromkeys(DIVERGENCE_KEYS)}
    assert AlignmentRecord.from_json({"variable": "count", "iia": 0.5}).direction == "0>0"
