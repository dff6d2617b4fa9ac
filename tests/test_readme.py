"""The README's main commands, exactly as written (slow: they train real models)."""

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
