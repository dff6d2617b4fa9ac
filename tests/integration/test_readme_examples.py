"""The README's Python blocks and the quickstart notebook, run as written in this process: the drop-in
models, the scan from Python and the language model from Python; the Python API example and the notebook
top to bottom (slow: they train real models). The README's commands: ``commands/test_readme.py``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from alignsearch import api
from tests.helpers import (
    ROOT,
)


def test_readme_drop_in_example_runs(tmp_path, monkeypatch) -> None:
    """The README's drop-in block, as written: a plain module and an in-memory HuggingFace model."""
    import re

    from tests.helpers import ROOT

    pytest.importorskip("transformers")
    code = re.search(r"<!-- ci:dropin -->\n```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    assert namespace["result"].steps == 50  # stop_at=None: exactly max_steps
    assert namespace["result"].records[0].source.startswith("multiobject/myrnn/sha256-")
    assert namespace["lm_result"].iia() >= 0.8


def readme_api_example() -> str:
    text = (ROOT / "README.md").read_text()
    return re.search(r"<!-- ci:api -->\n```python\n(.*?)```", text, re.S).group(1)


@pytest.mark.slow
def test_readme_api_example_runs(tmp_path, monkeypatch) -> None:
    """The README's Python example, as written (its zoo in a temporary folder)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALIGNSEARCH_ZOO", str(tmp_path / "zoo"))
    namespace: dict = {}
    exec(compile(readme_api_example(), "README.md", "exec"), namespace)
    result, saved = namespace["result"], namespace["saved"]
    assert result.iia("0>0", "count") >= 0.8
    assert saved.models == ["multiobject/gru/seed0"] and (tmp_path / "das_count.pt").is_file()


@pytest.mark.slow
def test_quickstart_notebook_runs_top_to_bottom(tmp_path, monkeypatch) -> None:
    notebook = json.loads((ROOT / "examples" / "quickstart.ipynb").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALIGNSEARCH_ZOO", str(tmp_path / "zoo"))
    namespace: dict = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), "quickstart.ipynb", "exec"), namespace)
    result, saved, fresh, gru = (namespace[k] for k in ("result", "saved", "fresh", "gru"))
    on_fresh = api.iia(saved, [gru], fresh)["iia"]  # the saved DAS map on new pairs: as good as on its own
    assert on_fresh == pytest.approx(result.iia("0>0", "count"), abs=0.1)
    mas = namespace["mas"]
    assert sorted(r.direction for r in mas.records) == ["0>0", "0>1", "1>0", "1>1"]
    into_gpt2 = next(r for r in mas.records if r.direction == "0>1")  # the GRU's count into GPT-2
    assert mas.iia("0>1", "count") == into_gpt2.iia
    crossed = [r for r in mas.records if r.direction in ("0>1", "1>0")]
    assert (
        max(r.iia - r.iia_step0 for r in crossed) > 0.05
    )  # a cross direction learned (200 steps: GPT-2 into the GRU)
    assert Path(tmp_path / "outputs" / "quickstart_das.pt").is_file()


def test_readme_scan_example_runs(tmp_path, monkeypatch) -> None:
    """The README's scan from Python, as written."""
    import re

    text = (ROOT / "README.md").read_text()
    code = re.search(r"<!-- ci:scan-api -->\n```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    result, best = namespace["result"], namespace["best"]
    assert len(result.cells) == 6 and best.position == "last" and best.iia >= 0.8


def test_readme_language_model_api_example_runs(tmp_path, monkeypatch) -> None:
    pytest.importorskip("transformers")
    text = (ROOT / "README.md").read_text()
    code = re.search(r"<!-- ci:lm-api -->\n```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    result = namespace["result"]
    assert result.records[0].variable == "count" and result.iia() >= 0.9
