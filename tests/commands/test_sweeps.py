"""Sweeps at scale through the real command line: joblib and submitit launchers, failures, reruns (a
sweep's job folders and summary: ``unit/test_sweep_jobs.py``; W&B: ``integration/test_wandb.py``)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import yaml

from alignsearch.cli import run_dir_name
from tests.helpers import TINY_ALIGNMENT, TINY_TRAINING, run_here, run_script


def summary(sweep: Path, key: str) -> dict[str, dict[str, str]]:
    """The rows of the sweep's summary.csv (one per job), keyed by the job's ``key=<value>`` override."""
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    by_key = {next(o for o in row["overrides"].split(",") if o.startswith(f"{key}=")): row for row in rows}
    assert len(by_key) == len(rows), rows  # one row per job
    return by_key


def assert_overrides_name_the_folders(sweep: Path) -> None:
    """Each row's overrides are the job's overrides as its folder name has them: the string that
    ``run_dir_name`` turns into the folder's name (cut, with a hash, when it is long)."""
    for row in csv.DictReader((sweep / "summary.csv").open()):
        record = yaml.safe_load((sweep / row["job"] / ".hydra" / "hydra.yaml").read_text())["hydra"]
        assert row["overrides"] == record["job"]["override_dirname"]
        assert run_dir_name(row["overrides"], record["overrides"]["task"], str(sweep)) == row["job"]


def job_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if re.match(r"\[job \d+\] ", line)]


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
    assert (
        first.stderr.strip().splitlines()[-1]
        == f"error: 1 job(s) failed or were interrupted: see {sweep / 'summary.csv'}"
    )
    assert sum(line.startswith("training ") for line in first.stdout.splitlines()) == 1  # trained once
    rows = summary(sweep, "snapshot")
    assert_overrides_name_the_folders(sweep)
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
    assert f"[job 2] failed: {rows['snapshot=1000']['job']}: ZooError: " in first.stdout
    assert len(job_lines(first.stdout)) == 3

    # an interrupted job (no results.json) reruns; finished ones are skipped, nothing is retrained (the
    # rerun in this process with the default launcher: hardware is not part of a job's folder name)
    (sweep / rows["snapshot=20"]["job"] / "results.json").unlink()
    default_launcher = [a for a in args if a != "hardware=local_parallel"]
    again = run_here("run_alignment.py", *default_launcher, zoo=zoo, cwd=tmp_path)
    assert again.returncode == 1 and "training " not in again.stdout
    rows = summary(sweep, "snapshot")  # one row per job: the rerun's
    assert_overrides_name_the_folders(sweep)
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
    rows = summary(sweep, "n_units")
    assert {k: r["status"] for k, r in rows.items()} == {"n_units=4": "done", "n_units=8": "done"}
    assert_overrides_name_the_folders(sweep)
    # the jobs print into their submitit logs; the sweep prints their lines when it ends, in job order
    lines = job_lines(done.stdout)
    assert [line.split(":")[0] for line in lines] == ["[job 0] done", "[job 1] done"]
    for num, (line, n_units) in enumerate(zip(lines, (4, 8), strict=True)):
        assert line.startswith(f"[job {num}] done: {rows[f'n_units={n_units}']['job']}: IIA ")
    sizes = sorted(json.loads(p.read_text())["config"]["n_units"] for p in sweep.glob("*/results.json"))
    assert sizes == [4, 8]
    assert (sweep / ".submitit").is_dir()  # submitit's own job folders
    assert not (sweep / ".submitit" / "%j").exists()  # not the empty one named after the pattern
    assert "Slurm job" not in done.stdout and {r["slurm_job"] for r in rows.values()} == {""}  # no Slurm here
    assert "sweep finished: 2 done, 0 already done, 0 failed" in done.stdout
