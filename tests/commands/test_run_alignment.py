"""``run_alignment.py`` run for real, start to finish (slow: real processes train and align): a run folder
is reused only for the same models, the controls reach the results and the report, and behavioural MAS
aligns a language model with its copy."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from alignsearch import zoo as model_zoo
from tests.helpers import (
    SMALL_GRU,
    TINY_ALIGNMENT,
    TINY_TRAINING,
    run_script,
)
from tests.integration.test_controls import FAST
from tests.integration.test_zoo_identity import TINY


@pytest.mark.slow
def test_run_folder_is_reused_only_for_the_same_models(tmp_path) -> None:
    zoo_a, zoo_b = tmp_path / "A", tmp_path / "B"
    args = [*TINY_TRAINING, *TINY_ALIGNMENT]
    first = run_script("run_alignment.py", *args, zoo=zoo_a, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (run_dir,) = (tmp_path / "outputs" / "run_alignment").iterdir()
    results_a = json.loads((run_dir / "results.json").read_text())

    # zoo B holds another GRU under the same name: other weights
    entry_b = zoo_b / "multiobject" / "gru" / TINY
    entry_b.parent.mkdir(parents=True)
    os.system(f"cp -r {zoo_a / 'multiobject' / 'gru' / TINY} {entry_b}")
    state = torch.load(entry_b / "model.pt", weights_only=True)
    torch.manual_seed(1)
    torch.save({k: v + 0.05 * torch.randn_like(v) for k, v in state.items()}, entry_b / "model.pt")
    info = json.loads((entry_b / "entry.json").read_text())  # published with these weights: its own digest
    info["weights_sha256"] = hashlib.sha256((entry_b / "model.pt").read_bytes()).hexdigest()
    (entry_b / "entry.json").write_text(json.dumps(info))

    second = run_script("run_alignment.py", *args, zoo=zoo_b, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "already done" not in second.stdout and "moved them to" in second.stdout
    results_b = json.loads((run_dir / "results.json").read_text())
    hashes = [r["identity"]["models"][0]["weights_sha256"] for r in (results_a, results_b)]
    assert hashes[0] != hashes[1] and hashes[1] == model_zoo.load(entry_b).weights_sha256
    superseded = json.loads((run_dir / "superseded" / "1" / "results.json").read_text())
    assert superseded == results_a  # nothing lost

    third = run_script("run_alignment.py", *args, zoo=zoo_b, cwd=tmp_path)
    assert third.returncode == 0 and "already done" in third.stdout
    assert json.loads((run_dir / "results.json").read_text()) == results_b
    # paths.zoo_dir is the same as the environment variable
    fourth = run_script("run_alignment.py", *args, f"paths.zoo_dir={zoo_a}", zoo=zoo_b, cwd=tmp_path)
    assert fourth.returncode == 0 and "moved them to" in fourth.stdout


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
    assert all(record[f"divergence_control_{c}"] >= 0 for c in ("random_subspace", "shuffled")), record
    report = subprocess.run(
        [sys.executable, "-m", "alignsearch.report", str(path.parent)], capture_output=True, text=True
    )
    assert report.returncode == 0, report.stderr
    markdown = (path.parent / "report.md").read_text()
    assert "control: random_subspace" in markdown and "selectivity" in markdown
    assert "control divergence: random_subspace" in markdown and "control divergence: shuffled" in markdown
    assert "random_subspace and shuffled are the informative ones" in markdown


@pytest.mark.slow
def test_behavioural_mas_aligns_a_model_with_its_copy(toy_lms, tmp_path) -> None:
    """Two models with the same weights (in other folders): every direction can be made right, so the
    trained cross directions reach (nearly) every pair. Their step-0 IIA is already high: with matched
    scales a random subspace swap moves a state by about its natural spread, which a model and its copy
    mostly read alike (unmatched, the residual stream's large mean made it a large push)."""
    from alignsearch.text.toy import count_sentences

    copy = tmp_path / "gpt2_copy"
    shutil.copytree(toy_lms["gpt2"], copy)
    corpus = tmp_path / "texts.txt"
    corpus.write_text("\n".join(count_sentences(500, seed=1)) + "\n")
    result = run_script(
        "run_alignment.py", "model=lm", f"model.path={toy_lms['gpt2']}", "alignment=mas",
        f"+partner.model_settings.path={copy}", "data=corpus", f"data.path={corpus}", "layer=1", "n_units=16",
        "alignment.max_steps=300", "alignment.val_every=50", "hardware.progress_bar=false",
        zoo=tmp_path / "zoo", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (path,) = tmp_path.glob("outputs/run_alignment/*/results.json")
    records = {r["direction"]: r for r in json.loads(path.read_text())["records"]}
    for direction in ("0>1", "1>0"):
        assert records[direction]["iia"] >= max(0.95, records[direction]["iia_step0"]), records[direction]
