"""``python -m alignsearch.sites``, run for real: a language model folder's sites and their widths, as
a table or JSON (the sites themselves and ``api.sites``: ``integration/test_lm_sites.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from tests.helpers import ROOT  # noqa: E402
from tests.integration.test_lm_sites import expected_sites, in_memory  # noqa: E402


def sites_command(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m alignsearch.sites <args>``, importing this checkout's package."""
    path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "alignsearch.sites", *args],
        cwd=cwd, env={**os.environ, "PYTHONPATH": path}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_command_lists_a_folders_sites(tmp_path) -> None:
    """A folder written by ``save_pretrained``: a table of every site and its width (or JSON), the same
    for the overrides of ``run_alignment.py``; a folder that holds no model is one line and exit status 2."""
    model, tokenizer = in_memory("gpt2", n_embd=32, n_layer=2, n_head=4, n_positions=32)
    folder = tmp_path / "tiny_gpt2"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    want = expected_sites(2, 32, 4, 8)
    listed = sites_command(str(folder), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == f"{folder}: {len(want)} sites (site=<name>; layer=<i> for layer.<i>)"
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[3:]]
    assert {site: int(width) for site, width, _ in rows} == want and [r[0] for r in rows] == list(want)
    assert rows[5] == [
        "layer.0.head.1",
        "8",
        "head 1's output in block 0 (before the attention output projection)",
    ]
    as_json = sites_command("model=lm", "model.path=tiny_gpt2", "--json", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == want
    (tmp_path / "empty").mkdir()
    for args in (["empty"], ["model=lm", "model.path=empty"], ["nowhere"]):
        refused = sites_command(*args, cwd=tmp_path)
        assert refused.returncode == 2, refused
        lines = [line for line in refused.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: model.path=") and not refused.stdout, refused
        assert "a folder written by save_pretrained" in lines[0]
