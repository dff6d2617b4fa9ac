"""The README's commands and the example it points to, as a user runs them: the quick start and
``examples/language_models.py`` (slow: they train real models), and what the README's blocks and the
examples write is ignored by git. The README's Python blocks: ``integration/test_readme_examples.py``."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.helpers import ROOT


def readme_block(name: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- ci:{name} -->\n```bash\n(.*?)```", text, re.S)
    assert match, f"README.md has no ci:{name} block"
    return [line for line in match.group(1).splitlines() if line.strip()]


@pytest.mark.slow
def test_readme_quick_start_trains_a_gru_and_finds_its_count(tmp_path) -> None:
    """The quick start's command, as written: it trains the GRU it needs, then aligns it."""
    commands = [
        line
        for line in readme_block("main")
        if line.startswith("python ") and not line.startswith("python -m")
    ]
    assert commands == ["python run_alignment.py"]
    script, *args = shlex.split(commands[0])[1:]
    env = {**os.environ, "ALIGNSEARCH_ZOO": str(tmp_path / "zoo")}
    done = subprocess.run(
        [sys.executable, str(ROOT / script), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "zoo" / "multiobject" / "gru" / "seed0" / "metrics.json").read_text())
    assert metrics["val_trial_acc"] >= 0.99 and metrics["heldout_trial_acc"] >= 0.99, metrics
    (results,) = tmp_path.glob("outputs/run_alignment/*/results.json")
    (record,) = json.loads(results.read_text())["records"]
    assert record["iia"] >= 0.9, record
    assert "| 0>0       | count    |" in done.stdout  # the IIA table ends the first command
    # the phase lines of the README's sample output
    assert "trained multiobject/gru/seed0: validation trial accuracy " in done.stdout
    assert (
        "aligning count at layer.0 of multiobject/gru/seed0 (das, 16 units, up to 1000 steps)" in done.stdout
    )


def test_the_quick_start_installs_into_its_virtual_environment() -> None:
    """Followed top to bottom, the quick start makes and activates the virtual environment before any
    install, so the CPU build of PyTorch goes into it, before alignsearch (issue 30); the tests' setup
    (what CI runs) starts the same way."""
    text = (ROOT / "README.md").read_text()
    start = text.index("## Quick start")
    lines = text[start : text.index("<!-- ci:setup -->", start)].splitlines()  # before the tests' setup
    steps = [
        "python -m venv .venv && . .venv/bin/activate",
        "pip install torch --index-url https://download.pytorch.org/whl/cpu",
        'pip install -e ".[dev,hf]"',
        "python run_alignment.py",
    ]
    assert [line for line in lines if line in steps] == steps
    assert readme_block("setup") == [steps[0], steps[2]]


def test_submitit_local_is_never_given_slurm_settings() -> None:
    """Submitit's local queue has none of Slurm's settings: a command that adds
    ``hydra/launcher=submitit_local`` to them is refused (issue 30), so no command shown does."""
    slurm_only = ("partition", "account", "qos", "setup", "array_parallelism", "signal_delay_s")
    for path in (ROOT / "README.md", ROOT / "src" / "alignsearch" / "conf" / "hardware" / "slurm.yaml"):
        lines = [line for line in path.read_text().splitlines() if "hydra/launcher=submitit_local -m" in line]
        assert lines, path
        for line in lines:
            assert not any(f"hydra.launcher.{key}" in line for key in slurm_only), line


@pytest.mark.slow
def test_language_model_example_runs(tmp_path) -> None:
    pytest.importorskip("transformers")
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "language_models.py"), "--out", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    runs = [
        json.loads(p.read_text()) for p in (tmp_path / "work").glob("outputs/run_alignment/*/results.json")
    ]
    kinds = sorted(r["data"]["kind"] for r in runs)
    assert kinds == ["corpus", "pairs"]
    das = next(r for r in runs if r["data"]["kind"] == "pairs")
    assert das["records"][0]["iia"] >= 0.9
    assert "| 0>0       | count    |" in done.stdout  # the API run's table
    assert "0>1 and 1>0 near 0 are what to" in done.stdout  # the corpus MAS table is explained


def test_what_the_examples_write_is_ignored_by_git() -> None:
    paths = [
        "das_count.pt",
        "toy_gpt2/config.json",
        "examples/quickstart_das.pt",
        "outputs/quickstart_das.pt",
    ]
    paths += ["examples/.ipynb_checkpoints/quickstart-checkpoint.ipynb", "zoo/multiobject/gru/seed0/model.pt"]
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode == 128:
        pytest.skip(f"not a git checkout: {done.stderr.strip()}")
    assert done.stdout.split() == paths
