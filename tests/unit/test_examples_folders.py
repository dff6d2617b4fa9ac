"""Where the examples read and write, as a user runs them: the notebook (which Jupyter runs in
``examples/``) uses the repository's zoo and writes under ``outputs/``; the language-model example leaves
no temporary folder behind and works outside the working folder (what they write is ignored by git:
``commands/test_readme.py``)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from alignsearch import api
from tests.helpers import ROOT


def notebook_code() -> list[str]:
    notebook = json.loads((ROOT / "examples" / "quickstart.ipynb").read_text())
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]


@pytest.mark.parametrize("folder", ["examples", "."], ids=["from examples", "from the repository"])
def test_the_notebook_uses_the_repositorys_zoo_wherever_it_runs(folder, monkeypatch) -> None:
    asked = {}

    def model(name, **kwargs):
        asked[name] = kwargs
        return SimpleNamespace(metrics={})

    monkeypatch.delenv("ALIGNSEARCH_ZOO", raising=False)
    monkeypatch.chdir(ROOT / folder)
    monkeypatch.setattr(api, "model", model)
    namespace: dict = {}
    exec(compile(notebook_code()[0], "quickstart.ipynb", "exec"), namespace)
    assert Path(asked["gru"]["zoo_dir"]) == ROOT / "zoo"
    assert namespace["OUT"] == ROOT / "outputs"  # ignored by git
    later = "\n".join(notebook_code()[1:])
    assert 'OUT / "quickstart_das.pt"' in later and "zoo_dir=ZOO" in later


def test_the_notebook_takes_alignsearch_zoo_when_set(tmp_path, monkeypatch) -> None:
    asked = {}
    monkeypatch.setenv("ALIGNSEARCH_ZOO", str(tmp_path / "zoo"))
    monkeypatch.chdir(ROOT / "examples")
    monkeypatch.setattr(
        api, "model", lambda name, **kwargs: asked.setdefault(name, kwargs) and SimpleNamespace(metrics={})
    )
    exec(compile(notebook_code()[0], "quickstart.ipynb", "exec"), {})
    assert asked["gru"]["zoo_dir"] == str(tmp_path / "zoo")


def test_the_readme_says_how_to_open_the_notebook_and_that_untrained_iia_is_zero() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "jupyter notebook examples/quickstart.ipynb" in readme
    dropin = re.search(r"<!-- ci:dropin -->\n```python\n(.*?)```", readme, re.S).group(1)
    assert "IIA 0.000 is expected" in dropin


def test_the_language_model_example_removes_its_temporary_folder(tmp_path, monkeypatch, capsys) -> None:
    spec = importlib.util.spec_from_file_location("language_models", ROOT / "examples" / "language_models.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    used = []

    def main(work: Path) -> None:
        used.append(work)
        (work / "counter").mkdir(parents=True)  # what the models and runs would leave

    monkeypatch.setattr(example, "main", main)
    monkeypatch.chdir(tmp_path)
    example.run([])
    assert not used[0].exists() and "now removed: --out FOLDER keeps it" in capsys.readouterr().out
    example.run(["--out", "mine"])
    assert used[1] == tmp_path / "mine" and (tmp_path / "mine" / "counter").is_dir()
    assert f"everything is in {tmp_path / 'mine'}" in capsys.readouterr().out


def test_the_language_model_example_writes_outside_the_working_folder(tmp_path, monkeypatch) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("language_models", ROOT / "examples" / "language_models.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    monkeypatch.chdir(tmp_path)
    default = example.work_folder([])
    assert tmp_path not in default.parents and default.is_dir()
    assert example.work_folder(["--out", "mine"]) == tmp_path / "mine"
    default.rmdir()
