"""``alignment_seed``: several runs of one model, drawn from seeds of the alignment's own (its pairs,
initial rotation and controls), the model still the zoo's of ``seed``; null is ``seed`` (the runs of
before), and the report pools the runs as it pools seeds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.helpers import TINY_ALIGNMENT, TINY_TRAINING, run_here

QUICK = ["model=gru", *TINY_TRAINING, *TINY_ALIGNMENT, "min_task_accuracy=0"]
TIMES = ("train_seconds", "seconds")


def results(folder: Path) -> dict[str, dict]:
    """Each run's ``results.json`` under ``folder`` by its alignment seed (``-`` for none), times left out."""
    found = {}
    for path in folder.glob("*/results.json"):
        data = json.loads(path.read_text())
        for key in TIMES:
            data.pop(key, None)
        found[str(data["config"].get("alignment_seed", "-"))] = data
    return found


def test_alignment_seeds_are_runs_of_one_model_and_null_is_the_seed(tmp_path, zoo) -> None:
    seeds, plain = tmp_path / "seeds", tmp_path / "plain"
    done = run_here("run_alignment.py", *QUICK, "-m", "alignment_seed=0,7", f"hydra.sweep.dir={seeds}",
                    zoo=zoo, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    again = run_here(
        "run_alignment.py", *QUICK, "-m", "seed=0", f"hydra.sweep.dir={plain}", zoo=zoo, cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr

    runs, before = results(seeds), results(plain)
    assert sorted(runs) == ["0", "7"] and list(before) == ["-"]
    trained = [p.name for p in (zoo / "multiobject" / "gru").iterdir() if p.is_dir()]
    assert len(trained) == 1 and trained[0].startswith("seed0-")  # one model trained: seed 0's
    for run in runs.values():
        assert run["config"]["seed"] == 0
        assert {r["source"] for r in run["records"]} == {before["-"]["records"][0]["source"]}
    # alignment_seed=0 is the run seed=0 gave before: the same records, field by field
    assert runs["0"]["records"] == before["-"]["records"]
    # another alignment seed draws other pairs and another initial rotation: other numbers
    first, other = runs["0"]["records"][0], runs["7"]["records"][0]
    assert first["divergence"] != other["divergence"]
    assert first["divergence_floor"] != other["divergence_floor"]  # measured on other pairs
    assert first["pairs_sha256"] != other["pairs_sha256"]  # other pairs: not to be compared pair by pair
    assert first["pairs_sha256"] == before["-"]["records"][0]["pairs_sha256"]  # the same pairs


def test_the_report_pools_alignment_seeds_as_runs(tmp_path) -> None:
    from alignsearch.report import build

    folder = tmp_path / "sweep"
    for n, (seed, alignment_seed, iia) in enumerate([(0, 0, 0.9), (0, 1, 0.8), (1, 0, 0.7), (1, 1, 0.6)]):
        run = folder / f"job{n}"
        run.mkdir(parents=True)
        config = {"task": "multiobject", "model": "gru", "alignment": "das", "seed": seed,
                  "alignment_seed": alignment_seed, "layer": 0}  # fmt: skip
        record = {"source": f"multiobject/gru/seed{seed}", "target": f"multiobject/gru/seed{seed}",
                  "direction": "0>0", "variable": "count", "trained": True, "iia": iia}  # fmt: skip
        (run / "results.json").write_text(json.dumps({"schema": 6, "config": config, "records": [record]}))
    build.report(folder)
    with (folder / "report.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["n"] == "4"
    assert float(rows[0]["iia_mean"]) == 0.75
