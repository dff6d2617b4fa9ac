"""The W&B logger, offline: a run's W&B file holds its final IIA, config, group, tags and IIA curve
(read back with ``tests/wandb_files.py``)."""

from __future__ import annotations

import json

from tests.helpers import SMALL_GRU, TINY_ALIGNMENT, run_here
from tests.wandb_files import run_contents


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
