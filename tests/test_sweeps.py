"""Sweeps at scale through the real command line: joblib and submitit launchers, failures, reruns, W&B."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.helpers import SMALL_GRU, TINY_ALIGNMENT, TINY_TRAINING, run_here, run_script
from tests.wandb_files import run_contents


def summary(sweep: Path) -> dict[str, dict[str, str]]:
    """Latest row per job of the sweep's summary.csv, keyed by the job's overrides."""
    return {row["overrides"]: row for row in csv.DictReader((sweep / "summary.csv").open())}


def test_parallel_sweep_keeps_going_past_a_failure_and_reruns_only_what_is_missing(zoo, tmp_path) -> None:
    sweep = tmp_path / "sweep"
    args = [
        "hardware=local_parallel",
        "-m",
        "snapshot=null,20,1000",  # the model keeps step 20 only: the last job fails at run time
        *TINY_TRAINING,
        "training.keep_steps=[20]",
        *TINY_ALIGNMENT,
        f"hydra.sweep.dir={sweep}",
    ]
    first = run_script("run_alignment.py", *args, zoo=zoo, cwd=tmp_path)
    assert first.returncode == 1
    assert first.stderr.strip().splitlines()[-1] == f"error: 1 job(s) failed: see {sweep / 'summary.csv'}"
    assert sum(line.startswith("training ") for line in first.stdout.splitlines()) == 1  # trained once
    rows = summary(sweep)
    assert {k: r["status"] for k, r in rows.items()} == {
        "snapshot=null": "done",
        "snapshot=20": "done",
        "snapshot=1000": "failed",
    }
    assert "snapshot=1000 is not allowed" in rows["snapshot=1000"]["error"]
    failed_dir = sweep / rows["snapshot=1000"]["job"]
    assert "ZooError" in (failed_dir / "error.txt").read_text()
    for key, snapshot in (("snapshot=null", None), ("snapshot=20", 20)):
        results = json.loads((sweep / rows[key]["job"] / "results.json").read_text())
        assert results["config"]["snapshot"] == snapshot
        assert float(rows[key]["iia"]) == round(results["records"][0]["iia"], 4)
    assert "[job 2] failed: snapshot=1000" in first.stdout

    # an interrupted job (no results.json) reruns; finished ones are skipped, nothing is retrained (the
    # rerun in this process with the default launcher: hardware is not part of a job's folder name)
    (sweep / rows["snapshot=20"]["job"] / "results.json").unlink()
    default_launcher = [a for a in args if a != "hardware=local_parallel"]
    again = run_here("run_alignment.py", *default_launcher, zoo=zoo, cwd=tmp_path)
    assert again.returncode == 1 and "training " not in again.stdout
    rows = summary(sweep)
    assert {k: r["status"] for k, r in rows.items()} == {
        "snapshot=null": "already done",
        "snapshot=20": "done",
        "snapshot=1000": "failed",
    }
    assert "sweep finished: 1 done, 1 already done, 1 failed" in again.stdout


def test_slurm_hardware_through_submitit_local(tiny_zoo, tmp_path) -> None:
    """The Slurm path with the same launcher code, run here: hydra/launcher=submitit_local."""
    sweep = tmp_path / "sweep"
    done = run_script(
        "run_alignment.py",
        "model=gru",
        "alignment=das",
        "hardware=slurm",
        "hydra/launcher=submitit_local",
        "-m",
        "n_units=4,8",
        *TINY_TRAINING,
        *TINY_ALIGNMENT,
        f"hydra.sweep.dir={sweep}",
        zoo=tiny_zoo,  # the model is there: the jobs only align
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    rows = summary(sweep)
    assert {k: r["status"] for k, r in rows.items()} == {"n_units=4": "done", "n_units=8": "done"}
    sizes = sorted(json.loads(p.read_text())["config"]["n_units"] for p in sweep.glob("*/results.json"))
    assert sizes == [4, 8]
    assert (sweep / ".submitit").is_dir()  # submitit's own job folders
    assert "sweep finished: 2 done, 0 already done, 0 failed" in done.stdout


def test_wandb_offline_run_holds_the_final_iia(trained_zoo, tmp_path) -> None:
    done = run_here(
        "run_alignment.py",
        "logger=wandb",
        *SMALL_GRU,
        *TINY_ALIGNMENT,
        zoo=trained_zoo,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wandb: logging offline to ")  # one line says so
    assert "anonymous" not in done.stdout + done.stderr  # no warning about W&B's deprecated setting
    (run_dir,) = (tmp_path / "outputs" / "run_alignment").iterdir()
    (record,) = json.loads((run_dir / "results.json").read_text())["records"]
    (run_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    contents = run_contents(run_file)
    assert float(contents["summary"]["final/0>0/count/iia"]) == record["iia"]
    assert float(contents["summary"]["final/0>0/count/iia_test"]) == record["iia_test"]
    assert contents["group"] == "multiobject/gru/das" and contents["job_type"] == "layer0"
    assert {"multiobject", "gru", "das", "count"} <= set(contents["tags"])
    config = {k: json.loads(v) for k, v in contents["config"].items()}
    assert (config["seed"], config["layer"], config["n_units"], config["variables"]) == (0, 0, 16, ["count"])
    curve = [row["val/iia/0>0/count"] for row in contents["history"] if "val/iia/0>0/count" in row]
    assert len(curve) >= 2  # the IIA curve: step 0 and later evaluations
