"""The Python API as a drop-in path: models in memory (a SequenceModel, a plain ``nn.Module``, a
HuggingFace LM and its tokenizer), ``api.iia`` for everything ``api.align`` trains, the command line's
rules for every argument, and the same records as the command line for the same settings."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from alignsearch import api, zoo
from alignsearch.errors import ConfigError
from alignsearch.models import GRU
from alignsearch.search.records import SCHEMA
from tests.helpers import TINY_ALIGNMENT, TINY_TRAINING, TinyNet, run_here, run_pairs

QUICK = {"max_steps": 20, "val_every": 10}
"""Tiny alignments: numbers that are not meant to be good, only the same through every path."""


@pytest.fixture(scope="module")
def gru(tiny_zoo) -> zoo.ZooEntry:
    return api.model(zoo_dir=tiny_zoo, overrides=TINY_TRAINING)


@pytest.fixture(scope="module")
def das(gru) -> api.AlignmentResult:
    return api.align(gru, n_units=8, overrides=TINY_ALIGNMENT, **QUICK)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def refused(call, *args, **kwargs) -> str:
    """The one-line message of the ConfigError ``call`` raises."""
    with pytest.raises(ConfigError) as error:
        call(*args, **kwargs)
    message = str(error.value)
    assert "\n" not in message
    return message


# -- the cases of the issue, each one line ------------------------------------------------------------------
def test_pairs_of_another_task_are_refused_not_scored(gru, das) -> None:
    other = api.pairs(_task("sameobject"), "updown", "count", n=50)
    message = refused(api.iia, das, [gru], other)
    assert message.startswith("pairs='pairs of task sameobject")
    assert "expected pairs of task multiobject" in message


def _task(name: str):
    from alignsearch.components import build_task

    return build_task(api.config("train_task_model", [f"task={name}"]).task)


def test_what_align_cannot_take_is_refused_in_one_line(gru, toy_lms) -> None:
    assert refused(api.align, gru.model).startswith("task=None is not allowed: expected the task a GRU reads")
    message = refused(api.align, "gru")
    assert (
        message.startswith("models='gru' is not allowed: expected a zoo entry")
        and "api.model('gru')" in message
    )
    lm = api.language_model(toy_lms["gpt2"])
    assert refused(api.align, lm).startswith("data=None is not allowed: expected pairs of text")
    from alignsearch.text.toy import count_pair_rows

    rows = api.text_pairs(count_pair_rows(3, seed=0), lm.tokenizer)
    assert refused(api.align, gru, data=rows).startswith(
        "data=TextPairSource is not allowed: expected no data"
    )


def test_a_model_that_cannot_read_the_vocabulary_is_refused_before_it_runs(gru) -> None:
    small = TinyNet(vocab=5)
    message = refused(api.own_model, small, "multiobject")
    assert message.startswith("model=tinynet is not allowed: expected a model that reads the 8 tokens")
    assert "it reads 5 token ids" in message and small.calls == 0
    assert refused(api.align, small, task="multiobject", site="rnn") == message


def test_iia_refuses_what_does_not_fit_and_takes_one_model_alone(gru, das) -> None:
    pairs = api.pairs(gru, "updown", "count", n=40, seed=3)
    assert api.iia(das, gru, pairs) == api.iia(das, [gru], pairs)  # one model, not in a list
    sameobject = api.own_model(GRU(vocab_size=_task("sameobject").vocab.size, d_model=32), "sameobject")
    assert refused(api.iia, das, [sameobject], pairs).startswith("pairs='pairs of task multiobject")
    empty = dataclasses.replace(
        pairs, ids=pairs.ids[:0], task_mask=pairs.task_mask[:0], base_pos=pairs.base_pos[:0],
        source_pos=pairs.source_pos[:0], base=pairs.base[torch.arange(0)], source=pairs.source[torch.arange(0)],
        state={k: v[:0] for k, v in pairs.state.items()},
    )  # fmt: skip
    assert refused(api.iia, das, [gru], empty) == "pairs=0 is not allowed: expected at least one pair"
    outside = dataclasses.replace(pairs, ids=pairs.ids.clone())
    outside.ids[0, 0] = 99
    assert "token id 99" in refused(api.iia, das, [gru], outside)


def test_pairs_and_alignment_files_are_checked(gru, tmp_path) -> None:
    assert refused(api.pairs, gru, n=-5) == "n=-5 is not allowed: expected a positive integer"
    assert refused(api.pairs, gru, n="5") == "n='5' is a str: expected a positive integer"
    corrupt = tmp_path / "alignment.pt"
    corrupt.write_bytes(b"not a torch file")
    message = refused(api.load_alignment, corrupt)
    assert message.startswith(f"alignment={corrupt} is not allowed: expected an alignment file")
    assert "weights_only" not in message


def test_arguments_follow_the_command_lines_rules(gru) -> None:
    align = api.align
    assert refused(align, gru, seed=-1) == (
        "seed=-1 is not allowed: expected a non-negative integer up to 4294967295 (a seed)"
    )
    assert refused(align, gru, n_units="16").startswith("n_units='16' is a str: expected an integer")
    assert refused(align, gru, n_units=500).startswith(
        "n_units=500 is not allowed: expected an integer in [1, 32]"
    )
    assert refused(align, gru, variables="count").startswith(
        "variables='count' is a str: expected a non-empty list of distinct variable names"
    )
    assert refused(align, gru, max_steps=0) == "max_steps=0 is not allowed: expected a positive integer"
    assert refused(align, gru, max_step=10) == (
        "max_step=10 is not allowed: expected a known setting (did you mean max_steps?)"
    )
    assert refused(api.model, "gruu").startswith("model=gruu is not allowed: expected one of gru, ")


# -- drop-in models -----------------------------------------------------------------------------------------
def test_a_sequence_model_in_memory_aligns_like_its_zoo_entry(gru, das) -> None:
    theirs = api.align(gru.model, task="multiobject", n_units=8, overrides=TINY_ALIGNMENT, **QUICK)
    (record,) = theirs.records
    assert record.source == f"multiobject/gru/sha256-{api.weights_digest(gru.model)[:12]}"
    assert (record.iia, record.iia_test) == (das.records[0].iia, das.records[0].iia_test)


def test_a_plain_module_aligns_at_a_module_path_and_is_evaluated_again() -> None:
    net = TinyNet(vocab=_task("multiobject").vocab.size)
    result = api.align(net, task="multiobject", site="rnn", n_units=4, overrides=TINY_ALIGNMENT, **QUICK)
    (record,) = result.records
    assert record.source.startswith("multiobject/tinynet/sha256-") and result.config["site"] == "rnn"
    # on the run's validation pairs, drawn again here: the record's scores
    again = api.iia(result, [net], run_pairs(_task("multiobject")), task="multiobject")
    assert (again["iia"], again["token_iia"]) == (record.iia, record.token_iia)
    assert {k: round(v, 4) for k, v in again["iia_by_position"].items()} == record.iia_by_position


def test_a_language_model_in_memory_is_the_same_model_as_its_folder(toy_lms) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alignsearch.text.toy import count_pair_rows

    folder = toy_lms["gpt2"]
    from_folder = api.language_model(folder)
    in_memory = api.language_model(
        AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder), name="gpt2"
    )
    pairs = api.text_pairs(count_pair_rows(300, seed=0), from_folder.tokenizer)
    settings = dict(data=pairs, variables=["count"], layer=0, n_units=8, max_steps=60, val_every=30)
    a, b = api.align(from_folder, **settings), api.align(in_memory, **settings)
    assert [r.iia for r in a.records] == [r.iia for r in b.records]
    assert a.iia() >= 0.8
    # an alignment of a language model is evaluated again on text pairs
    again = api.iia(a, [from_folder], pairs.splits["val"])
    assert again["iia"] == pytest.approx(a.iia(), abs=1e-9)


# -- one run core -------------------------------------------------------------------------------------------
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
    assert cli["schema"] == py["schema"] == SCHEMA == 4
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


# -- progress and exact steps -------------------------------------------------------------------------------
def test_align_reports_progress_unless_asked_not_to(gru, capsys) -> None:
    api.align(gru, n_units=4, overrides=[*TINY_ALIGNMENT, "hardware.progress_every=0.001"], **QUICK)
    out = capsys.readouterr().out
    assert "step 20/20 (100%)" in out  # output captured: not a terminal, so lines
    api.align(gru, n_units=4, progress=False, overrides=TINY_ALIGNMENT, **QUICK)
    assert "step " not in capsys.readouterr().out


def test_stop_at_none_trains_exactly_max_steps(gru) -> None:
    impatient = {"patience": 0, "min_delta": 1.0, "max_steps": 30, "val_every": 10}  # no step improves
    tiny = [o for o in TINY_ALIGNMENT if not o.startswith("alignment.max_steps=")]  # max_steps says 30
    early = api.align(gru, n_units=4, overrides=tiny, **impatient)
    exact = api.align(gru, n_units=4, overrides=tiny, stop_at=None, **impatient)
    assert early.steps < 30 and exact.steps == 30


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


def test_records_of_results_written_before_the_schema_read_the_same() -> None:
    from alignsearch.search.records import DIVERGENCE_KEYS, AlignmentRecord

    old = {"source": "a", "target": "a", "direction": "0>0", "variable": "count", "trained": True,
           "loss": "behaviour", "iia": 0.9, "iia_heldout": None, "iia_test": 0.8, "token_iia": 0.95,
           "iia_step0": 0.1, "iia_by_position": {"4": 0.9}, "iia_control_shuffled": 0.2}  # fmt: skip
    record = AlignmentRecord.from_json(old)
    assert record.controls == {"shuffled": 0.2} and record.selectivity == pytest.approx(0.7)
    assert record.divergence is None  # not measured before schema 3
    assert record.to_json() == {**old, **dict.fromkeys(DIVERGENCE_KEYS)}
    assert AlignmentRecord.from_json({"variable": "count", "iia": 0.5}).direction == "0>0"
