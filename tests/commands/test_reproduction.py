"""The paper's runs through the real commands (slow): the IIA-over-training preset and its report, and a
tiny ``python -m alignsearch.reproduce`` end to end (its verdicts on known rows:
``unit/test_reproduce.py``)."""

from __future__ import annotations

import csv
import json
import statistics
import subprocess
import sys

import pytest

from alignsearch import report
from tests.helpers import TINY_ALIGNMENT, run_script


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


@pytest.mark.slow
def test_a_tiny_reproduction_runs_end_to_end(tmp_path) -> None:
    tiny = ["model.d_model=16", "training.max_steps=40", "training.val_every=20", "training.n_val=64",
            "training.n_heldout=32", "alignment.max_steps=20", "alignment.val_every=10", "alignment.n_train=256",
            "alignment.n_val=64", "alignment.n_heldout=64", "alignment.n_test=64",
            "min_task_accuracy=0"]  # fmt: skip  # tiny models that learn nothing
    done = subprocess.run(
        [sys.executable, "-m", "alignsearch.reproduce", "--only", "upup", "--out", str(tmp_path), *tiny],
        capture_output=True, text=True, env={**__import__("os").environ, "ALIGNSEARCH_ZOO": str(tmp_path / "zoo")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "FINDINGS.md").read_text()
    assert "## 3. Up-Down explains the recurrent models better than Up-Up" in text
    assert "| gru |" in text and (tmp_path / "upup" / "report.md").is_file()
