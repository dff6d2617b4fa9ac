"""One run core: the command line (``run_alignment.py``, run in this process) and the Python API write the
same ``results.json`` records for the same settings: DAS on a task model, MAS between two of them, and DAS on
a language model's text pairs."""

from __future__ import annotations

import json
from pathlib import Path

from alignsearch import api
from alignsearch.search.records import SCHEMA
from tests.helpers import TINY_ALIGNMENT, TINY_TRAINING, run_here, run_pairs


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def same_records(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x == y


def test_the_command_line_and_the_api_write_the_same_results(tiny_zoo, tmp_path, monkeypatch) -> None:
    from alignsearch.search.spec import AlignmentPlan

    built = []
    original = AlignmentPlan.build_interchange
    monkeypatch.setattr(AlignmentPlan, "build_interchange", lambda self: built.append(1) or original(self))
    from alignsearch.cli import run_alignment

    body = run_alignment.main

    def job(cfg):  # the job alone, without the check before Hydra
        built.clear()
        return body(cfg)

    monkeypatch.setattr(run_alignment, "main", job)
    cli_dir, api_dir = tmp_path / "cli", tmp_path / "api"
    args = ["n_units=8", "alignment.max_steps=20", "alignment.val_every=10", *TINY_ALIGNMENT, *TINY_TRAINING]
    done = run_here("run_alignment.py", *args, f"hydra.run.dir={cli_dir}", zoo=tiny_zoo, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert built == [1]  # the interchange is built once per job: planned, then trained
    entry = api.model(zoo_dir=tiny_zoo, overrides=TINY_TRAINING)
    api.align(entry, n_units=8, out_dir=api_dir, overrides=TINY_ALIGNMENT, max_steps=20, val_every=10)
    cli, py = (json.loads((d / "results.json").read_text()) for d in (cli_dir, api_dir))
    assert cli["schema"] == py["schema"] == SCHEMA == 7
    same_records(cli["records"], py["records"])
    assert cli["config"] == py["config"] and cli["identity"] == py["identity"]


def test_mas_through_both_paths_gives_the_same_records(tiny_zoo, tmp_path) -> None:
    import shutil

    tiny_zoo = shutil.copytree(tiny_zoo, tmp_path / "zoo")  # the partner is trained into a copy
    args = ["alignment=mas", "n_units=8", "similarity=false", *TINY_ALIGNMENT, *TINY_TRAINING]
    done = run_here(
        "run_alignment.py", *args, f"hydra.run.dir={tmp_path / 'cli'}", zoo=tiny_zoo, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    models = [api.model(zoo_dir=tiny_zoo, seed=s, overrides=TINY_TRAINING) for s in (0, 1)]
    result = api.align(models, alignment="mas", n_units=8, out_dir=tmp_path / "api", overrides=TINY_ALIGNMENT)
    cli = json.loads((tmp_path / "cli" / "results.json").read_text())
    same_records(cli["records"], [r.to_json() for r in result.records])
    assert sorted(r.direction for r in result.records) == ["0>0", "0>1", "1>0", "1>1"]
    # a MAS direction evaluated again (model 0 into model 1) on its validation pairs, drawn again here
    pairs = run_pairs(models[1].task, direction="0>1", source_task=models[0].task)
    cross = api.iia(result, models, pairs, source=0, target=1)
    into = result.record("0>1", "count")
    assert (cross["iia"], cross["token_iia"]) == (into.iia, into.token_iia)


def test_a_language_model_through_both_paths_gives_the_same_records(toy_lms, tmp_path) -> None:
    from alignsearch.text.toy import count_pair_rows

    path = write_jsonl(tmp_path / "count.jsonl", count_pair_rows(300, seed=0))
    args = ["model=lm", f"model.path={toy_lms['gpt2']}", "data=pairs", f"data.path={path}", "layer=0"]
    args += ["n_units=8", "alignment.max_steps=40", "alignment.val_every=20", "hardware.progress_bar=false"]
    done = run_here(
        "run_alignment.py", *args, f"hydra.run.dir={tmp_path / 'cli'}", zoo=tmp_path, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    lm = api.language_model(toy_lms["gpt2"])
    pairs = api.text_pairs(count_pair_rows(300, seed=0), lm.tokenizer)
    result = api.align(lm, data=pairs, variables=["count"], layer=0, n_units=8, max_steps=40, val_every=20)
    cli = json.loads((tmp_path / "cli" / "results.json").read_text())
    same_records(cli["records"], [r.to_json() for r in result.records])
    saved = (tmp_path / "cli" / ".hydra" / "config.yaml").read_text()  # only what applies to text runs
    assert "\ntask:" not in f"\n{saved}" and "\ntraining:" not in f"\n{saved}" and "\nmodel:" in f"\n{saved}"
