"""run_alignment.py's command line (run in this process: ``helpers.run_here``; the real process is in
``commands/test_sweeps.py`` and ``commands/test_refusals.py``), its checks, and its body on composed
configs."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from alignsearch import api
from alignsearch.cli import run_alignment
from alignsearch.components import group_choices
from alignsearch.search.records import INTERVAL_FIELDS
from tests.helpers import (
    SMALL_GRU,
    TINY_ALIGNMENT,
    TINY_SUFFIX,
    TINY_TRAINING,
    assert_refused,
    compose_config,
    run_here,
    run_pairs,
)

RECORD_KEYS = {
    "source",
    "target",
    "direction",
    "loss",
    "variable",
    "trained",
    "iia",
    "iia_heldout",
    "iia_test",
    "token_iia",
    "iia_step0",
    "iia_by_position",
    "divergence",
    "divergence_floor",
    "divergence_top",
    "divergence_top_floor",
    *INTERVAL_FIELDS,  # each IIA's pairs and 95% interval (schema 5)
    "pair_hits",  # which validation pairs it got right, and a digest of their inputs (schema 6)
    "pairs_sha256",
    "n_pairs_by_position",  # each position's pairs and 95% interval (schema 7)
    "iia_by_position_interval",
}


PHASES = ("training ", "trained ", "aligning ", "aligned: ", "results: ")
"""How the lines that start and end each phase of a run begin (issue 30: a line per phase)."""


def phase_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(PHASES)]


def test_fresh_zoo_trains_the_model_then_aligns(zoo, tmp_path) -> None:
    done = run_here("run_alignment.py", *TINY_TRAINING, *TINY_ALIGNMENT, zoo=zoo, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    name = f"multiobject/gru/seed0-d_model32{TINY_SUFFIX}"
    assert (zoo / name / "model.pt").is_file()
    # each phase says when it starts and ends, once, in order: which model, where, how well, how long
    lines = phase_lines(done.stdout)
    assert [line.split(" ")[0] for line in lines] == [
        "training",
        "trained",
        "aligning",
        "aligned:",
        "results:",
    ]
    training, trained, aligning, aligned, _ = lines
    metrics = json.loads((zoo / name / "metrics.json").read_text())
    assert training == f"training {zoo / name}"
    assert trained.startswith(
        f"trained {name}: validation trial accuracy {metrics['val_trial_acc']:.3f} after 40 steps ("
    )
    assert aligning == f"aligning count at layer.0 of {name} (das, 16 units, up to 20 steps)"
    (run_dir,) = (tmp_path / "outputs" / "run_alignment").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    cfg = results["config"]
    assert not [k for k, v in cfg.items() if isinstance(v, dict)]  # flat: one column per setting
    assert (cfg["task"], cfg["model"], cfg["alignment"], cfg["seed"], cfg["layer"], cfg["n_units"]) == (
        "multiobject",
        "gru",
        "das",
        0,
        0,
        16,
    )
    assert cfg["variables"] == ["count"] and cfg["causal_model"] == "updown" and cfg["site"] == "layer.0"
    (record,) = results["records"]
    assert set(record) == RECORD_KEYS
    assert record["source"] == record["target"] == f"multiobject/gru/seed0-d_model32{TINY_SUFFIX}"
    assert (record["direction"], record["loss"], record["trained"]) == ("0>0", "behaviour", True)
    # the saved alignment on the run's validation, held-out and test pairs, drawn again here: the record's
    saved = api.load_alignment(run_dir / "alignment.pt")
    entry = api.model(zoo_dir=zoo, overrides=TINY_TRAINING)
    val = api.iia(saved, entry, run_pairs(entry.task))
    assert (val["iia"], val["token_iia"]) == (record["iia"], record["token_iia"])
    assert record["iia_by_position"]
    assert {k: round(v, 4) for k, v in val["iia_by_position"].items()} == record["iia_by_position"]
    # each position's pairs add up to the validation pairs, and its interval holds its IIA
    pairs_at = record["n_pairs_by_position"]
    assert set(pairs_at) == set(record["iia_by_position"]) and sum(pairs_at.values()) == record["n_pairs"]
    for pos, (low, high) in record["iia_by_position_interval"].items():
        assert low <= record["iia_by_position"][pos] <= high and high - low > 0
    # the console's table gives the validation IIA with its interval over pairs
    assert f"{record['iia']:.3f} [{record['iia_low']:.3f}, {record['iia_high']:.3f}]" in done.stdout
    for split in ("heldout", "test"):
        assert api.iia(saved, entry, run_pairs(entry.task, split=split))["iia"] == record[f"iia_{split}"]
    assert results["steps"] == 20 and results["train_seconds"] > 0
    seconds = results["seconds"]  # where the time went: every phase of a DAS run without controls
    assert set(seconds) == {"pairs", "steps", "validation", "evaluation", "other", "task_accuracy"}
    assert all(v >= 0 for v in seconds.values()) and 0 < seconds["steps"] < results["train_seconds"]
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert {r["split"] for r in rows} == {"val"} and rows[0]["step"] == "0"  # held-out: at the end only
    assert float(rows[0]["iia"]) == record["iia_step0"]  # the curve's first point
    saved = torch.load(run_dir / "alignment.pt", weights_only=True)
    assert any("rotate" in k for k in saved["state_dict"])
    assert "IIA val" in done.stdout
    assert aligned.startswith(f"aligned: validation IIA {record['iia']:.3f} after 20 steps (")
    progress = done.stdout.splitlines()
    assert progress.index(trained) < progress.index(aligning) < progress.index(aligned)

    # the same command again: the run is found, nothing is trained
    again = run_here("run_alignment.py", *TINY_TRAINING, *TINY_ALIGNMENT, zoo=zoo, cwd=tmp_path)
    assert again.returncode == 0 and "already done" in again.stdout and "training " not in again.stdout
    assert [line.split(" ")[0] for line in phase_lines(again.stdout)] == []  # nothing starts again


def test_an_under_trained_model_is_refused_unless_accepted(zoo, tmp_path) -> None:
    """Issue 30: a model trained too few steps to learn the task was aligned without a word. Training it
    inside the alignment ends with a line of its accuracy; below ``min_task_accuracy`` (0.95 by default)
    the run stops there with one line saying what it reached and how to go on, and the value it offers
    is accepted."""
    strict = [o for o in TINY_ALIGNMENT if not o.startswith("min_task_accuracy=")]
    refused = run_here("run_alignment.py", *TINY_TRAINING, *strict, zoo=zoo, cwd=tmp_path)
    name = f"multiobject/gru/seed0-d_model32{TINY_SUFFIX}"
    accuracy = json.loads((zoo / name / "metrics.json").read_text())["val_trial_acc"]
    assert accuracy < 0.95  # 40 steps do not learn the task
    accept = math.floor(accuracy * 100) / 100
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"error: min_task_accuracy=0.95 is not allowed: expected a threshold that {name} reaches: its "
        f"validation trial accuracy is {accuracy:.3f} after 40 training steps (train it longer, with a "
        f"larger training.max_steps, or accept it with min_task_accuracy={accept:g})"
    ]
    assert [line.split(" ")[0] for line in phase_lines(refused.stdout)] == ["training", "trained"]
    assert f"trained {name}: validation trial accuracy {accuracy:.3f}" in refused.stdout
    assert not (tmp_path / "outputs").exists()  # refused before any alignment work: no run folder

    accepted = run_here(
        "run_alignment.py", *TINY_TRAINING, *strict, f"min_task_accuracy={accept:g}", zoo=zoo, cwd=tmp_path
    )
    assert accepted.returncode == 0, accepted.stderr
    # the model is in the zoo now: no training, and no line about it
    assert [line.split(" ")[0] for line in phase_lines(accepted.stdout)] == [
        "aligning",
        "aligned:",
        "results:",
    ]
    # a model found in the zoo (not trained now) is held to the threshold too
    again = run_here("run_alignment.py", *TINY_TRAINING, *strict, zoo=zoo, cwd=tmp_path)
    assert again.returncode == 2 and again.stderr == refused.stderr and "training " not in again.stdout


def test_user_command_form_with_multirun_flag_after_overrides(trained_zoo, tmp_path) -> None:
    """``model=gru alignment=das -m seed=0 n_units=4,8``: the command line's arguments, in this process."""
    done = run_here(
        "run_alignment.py",
        "model=gru",
        "alignment=das",
        "-m",
        "seed=0",
        "n_units=4,8",
        *SMALL_GRU,
        *TINY_ALIGNMENT,
        zoo=trained_zoo,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    results = sorted(tmp_path.glob("multirun/run_alignment/*/*/*/results.json"))
    assert len(results) == 2
    assert sorted(json.loads(p.read_text())["config"]["n_units"] for p in results) == [4, 8]


@pytest.mark.parametrize("alignment", ["das", "linear", "revres", "fca", "boundless"])
def test_every_alignment_function_runs_end_to_end(
    alignment, trained_zoo, enter_command_env, tmp_path
) -> None:
    """run_alignment's body on the composed config of each alignment function (the command line around
    it is the same for all: see the tests above)."""
    enter_command_env(trained_zoo)
    cfg = compose_config(
        "run_alignment",
        [
            f"alignment={alignment}",
            "alignment.variables=[count,phase,null]",
            "n_units=4",
            *SMALL_GRU,
            *TINY_ALIGNMENT,
            f"paths.output_dir={tmp_path / 'run'}",
        ],
    )
    run_alignment.main(cfg)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [r["variable"] for r in results["records"]] == ["count", "phase", "null"]
    assert results["config"]["alignment"] == alignment
    if alignment == "boundless":
        assert set(results["learned_units"]) == {"count", "phase"}


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["n_units=0"], ["n_units=0", "an integer in [1, 32]"]),
        (["n_units=33"], ["n_units=33", "[1, 32]"]),
        (["n_units=20", "alignment.variables=[count,phase]"], ["n_units=[20,20]", "add up to at most 32"]),
        (["layer=3"], ["layer=3", "a layer of the gru: embedding, 0"]),
        (["alignment.variables=[speed]"], ["variables=speed", "count, phase, full, null"]),
        (["task=arithmetic"], ["causal_model=updown", "a causal model of task arithmetic"]),
        (
            ["alignment.causal_model=upup", "alignment.variables=[count]"],
            ["variables=count", "demo_count, resp_count"],
        ),
        (
            ["alignment=procrustes"],
            [
                "alignment=procrustes",
                f"one of {', '.join(group_choices('alignment'))}",  # every conf/alignment choice
            ],
        ),
        (["auto_train=false", "seed=7"], ["auto_train=False", "a trained zoo entry at"]),
    ],
)
def test_bad_alignment_settings(args, fragments, trained_zoo, enter_command_env, tmp_path) -> None:
    enter_command_env(trained_zoo)
    before = sorted(p.name for p in trained_zoo.rglob("*"))
    assert_refused("run_alignment.py", *SMALL_GRU, *TINY_ALIGNMENT, *args, says=fragments)
    assert sorted(p.name for p in trained_zoo.rglob("*")) == before  # nothing trained
    assert not list(tmp_path.rglob("*.ckpt")) and not (tmp_path / "outputs").exists()


def test_module_path_site_matches_the_layer_end_to_end(in_command_env, tmp_path) -> None:
    """run_alignment's body with ``site=blocks.1`` (a module path) and with ``layer=1``: the same results."""
    records = {}
    for name, choice in (("a", "layer=1"), ("b", "site=blocks.1")):
        overrides = ["model=transformer", *TINY_TRAINING, *TINY_ALIGNMENT, choice]
        run_alignment.main(
            compose_config("run_alignment", [*overrides, f"paths.output_dir={tmp_path / name}"])
        )
        (records[name],) = json.loads((tmp_path / name / "results.json").read_text())["records"]
    a, b = records["a"], records["b"]
    assert (a["iia"], a["iia_test"], a["token_iia"]) == (b["iia"], b["iia_test"], b["token_iia"])
