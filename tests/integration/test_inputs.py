"""One input layer (:mod:`alignsearch.inputs`): every input is identified by its content. Two corpora of
as many texts are two corpora, through the API and the command line alike; the digests follow the
content (the same content, the same digest; one token changed, another)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from alignsearch import inputs
from alignsearch.errors import ConfigError
from alignsearch.search.text_data import CorpusSource
from tests.helpers import run_here

CORPUS_RUN = {"max_steps": 4, "val_every": 2, "batch_size": 16, "eval_batch_size": 64, "progress": False}
CORPUS_TEXTS = 30


def tiny_corpus(horizon: int = 4) -> CorpusSource:
    """A corpus of three splits, made without a tokenizer."""
    ids = {
        split: torch.arange(12 * n).reshape(n, 12) % 50
        for split, n in (("train", 6), ("val", 2), ("test", 2))
    }
    lengths = {split: torch.full((len(t),), 12) for split, t in ids.items()}
    return CorpusSource(ids, lengths, horizon, n_texts=10)


def changed(tensors: dict[str, torch.Tensor], split: str, row: int, column: int) -> dict[str, torch.Tensor]:
    """A copy of ``tensors`` with one token of ``split`` changed."""
    copy = {name: t.clone() for name, t in tensors.items()}
    copy[split][row, column] += 1
    return copy


# -- the digests ---------------------------------------------------------------------------------------------
def test_a_corpus_digest_follows_its_token_ids_not_its_size() -> None:
    corpus = tiny_corpus()
    same = dataclasses.replace(corpus, ids={k: v.clone() for k, v in corpus.ids.items()})
    assert inputs.corpus_digest(same) == inputs.corpus_digest(corpus)
    for split in ("train", "val", "test"):
        one_token = dataclasses.replace(corpus, ids=changed(corpus.ids, split, 1, 3))
        assert inputs.corpus_digest(one_token) != inputs.corpus_digest(corpus), split
    shorter = dataclasses.replace(corpus, lengths={**corpus.lengths, "val": torch.tensor([12, 11])})
    assert inputs.corpus_digest(shorter) != inputs.corpus_digest(corpus)
    assert inputs.corpus_digest(tiny_corpus(horizon=3)) != inputs.corpus_digest(corpus)  # other labels
    # what the run records is the digest: the size alone (the same texts and skipped) no longer decides
    data = inputs.python_corpus(dataclasses.replace(corpus, ids=changed(corpus.ids, "train", 0, 0)))
    assert data.summary == inputs.python_corpus(corpus).summary
    assert data.identity != inputs.python_corpus(corpus).identity


def test_a_pairs_digest_follows_every_token_and_position(toy_lms) -> None:
    from alignsearch import api
    from alignsearch.text.toy import count_pair_rows

    tokenizer = api.language_model(toy_lms["gpt2"]).tokenizer
    pairs = api.text_pairs(count_pair_rows(60, seed=0), tokenizer)
    again = api.text_pairs(count_pair_rows(60, seed=0), tokenizer)
    assert inputs.pairs_digest(again) == inputs.pairs_digest(pairs)
    val = pairs.splits["val"]
    for field in ("ids", "source_ids", "base_pos"):
        tensor = getattr(val, field).clone()
        tensor.view(-1)[0] += 1
        one_token = dataclasses.replace(
            pairs, splits={**pairs.splits, "val": dataclasses.replace(val, **{field: tensor})}
        )
        assert inputs.pairs_digest(one_token) != inputs.pairs_digest(pairs), field
    other_rows = api.text_pairs(count_pair_rows(60, seed=1), tokenizer)
    assert inputs.pairs_digest(other_rows) != inputs.pairs_digest(pairs)


def test_a_file_digest_follows_its_bytes(tmp_path) -> None:
    first, same, other = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"
    first.write_text("one two three\n")
    same.write_text("one two three\n")
    other.write_text("one two four\n")
    assert inputs.file_digest(first) == inputs.file_digest(same) != inputs.file_digest(other)


def test_a_corpus_from_python_is_what_a_file_of_its_texts_gives(toy_lms, tmp_path) -> None:
    """``api.corpus(texts, tokenizer)`` holds the token ids ``data=corpus`` reads from a ``.jsonl`` of the
    same texts; tokenizers that disagree, a string, a non-string text or an unknown option are refused."""
    from alignsearch import api
    from alignsearch.search.text_data import corpus_source
    from alignsearch.text.toy import count_sentences

    texts = count_sentences(CORPUS_TEXTS, seed=1)
    tokenizer = api.language_model(toy_lms["gpt2"]).tokenizer
    file = tmp_path / "texts.jsonl"
    file.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    from_file = corpus_source(str(file), [tokenizer], horizon=3)
    from_python = api.corpus(texts, tokenizer, horizon=3)
    assert inputs.corpus_digest(from_python) == inputs.corpus_digest(from_file)
    assert (from_python.n_texts, from_python.skipped) == (from_file.n_texts, from_file.skipped)
    with pytest.raises(ConfigError, match=r"^texts='one text' is a str: expected a list"):
        api.corpus("one text", tokenizer)
    with pytest.raises(ConfigError, match=r"^texts\[1\]=3 is not allowed: expected a string"):
        api.corpus(["a text", 3], tokenizer)
    with pytest.raises(ConfigError, match=r"^horizn=2 is not allowed: .*horizon"):
        api.corpus(texts, tokenizer, horizn=2)
    with pytest.raises(ConfigError, match=r"^horizon=0 is not allowed"):
        api.corpus(texts, tokenizer, horizon=0)

    def other(text: str, add_special_tokens: bool = True) -> dict:  # reads every text as the same 8 tokens
        return {"input_ids": list(range(8))}

    with pytest.raises(
        ConfigError, match=r"tokenizers that agree on the texts \(they differ on texts\[0\]\)"
    ):
        api.corpus(texts, [tokenizer, other])


# -- two corpora of as many texts, in one folder -------------------------------------------------------------
def test_two_corpora_of_the_same_size_are_two_runs_through_the_api(toy_lms, tmp_path) -> None:
    """The second corpus (as many texts, other texts) is not "already done" with the first's results: its
    identity names other data, and the first's results move to ``superseded/``. The first corpus again
    (made anew from the same texts) finds its own results."""
    from alignsearch import api
    from alignsearch.text.toy import count_sentences

    lms = [api.language_model(toy_lms["gpt2"]), api.language_model(toy_lms["gpt2_terse"])]
    out = tmp_path / "run"

    def align(seed: int):
        corpus = api.corpus(count_sentences(CORPUS_TEXTS, seed=seed), lms[0].tokenizer)
        result = api.align(lms, alignment="mas", data=corpus, layer=1, n_units=8, out_dir=out, **CORPUS_RUN)
        return result, json.loads((out / "results.json").read_text())

    first, first_json = align(seed=1)
    second, second_json = align(seed=2)
    assert first.status != "already done" and second.status != "already done"
    assert first_json["data"] == second_json["data"]  # the same size: 30 texts, none skipped
    assert first_json["identity"]["data_sha256"] != second_json["identity"]["data_sha256"]
    (superseded,) = (out / "superseded").glob("*/results.json")
    assert json.loads(superseded.read_text())["identity"] == first_json["identity"]
    again, again_json = align(seed=2)
    assert again.status == "already done" and again_json["identity"] == second_json["identity"]


def test_two_corpus_files_of_the_same_size_are_two_runs_through_the_command_line(toy_lms, tmp_path) -> None:
    from alignsearch.text.toy import count_sentences

    out = tmp_path / "run"
    files = []
    for seed in (1, 2):
        file = tmp_path / f"texts{seed}.txt"
        file.write_text("\n".join(count_sentences(CORPUS_TEXTS, seed=seed)) + "\n")
        files.append(file)
    runs = []
    for file in files:
        result = run_here(
            "run_alignment.py", "model=lm", f"model.path={toy_lms['gpt2']}", "alignment=mas",
            f"+partner.model_settings.path={toy_lms['gpt2_terse']}", "data=corpus", f"data.path={file}",
            "layer=1", "n_units=8", "alignment.max_steps=4", "alignment.val_every=2", "alignment.batch_size=16",
            "alignment.eval_batch_size=64", "hardware.progress_bar=false", "similarity=false",
            f"paths.output_dir={out}", zoo=tmp_path / "zoo", cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert not result.stdout.startswith("already done"), result.stdout
        runs.append(json.loads((out / "results.json").read_text()))
    assert runs[0]["data"] == runs[1]["data"]
    assert runs[0]["identity"]["data_sha256"] != runs[1]["identity"]["data_sha256"]
    (superseded,) = (out / "superseded").glob("*/results.json")
    assert json.loads(superseded.read_text())["identity"] == runs[0]["identity"]


# -- one place for each piece ---------------------------------------------------------------------------------
def test_the_command_line_and_the_api_make_the_same_language_model_inputs(toy_lms, tmp_path) -> None:
    """A folder's model and a pairs file's data through the command line's reading, and the same folder
    through the API: the same run model (name, weights digest, labels but the data's name)."""
    from alignsearch import api
    from alignsearch.cli.text_run import text_inputs
    from alignsearch.text.toy import count_pair_rows
    from tests.helpers import compose_config

    path = tmp_path / "count.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in count_pair_rows(60, seed=0)))
    cfg = compose_config(
        "run_alignment",
        [
            "model=lm",
            f"model.path={toy_lms['gpt2']}",
            "data=pairs",
            f"data.path={path}",
            f"paths.output_dir={tmp_path}",
        ],
    )
    (cli_model,), data = text_inputs(cfg, tmp_path)
    api_model = inputs.run_model(api.language_model(toy_lms["gpt2"]), 0, None, "count")
    assert (cli_model.name, cli_model.weights_sha256) == (api_model.name, api_model.weights_sha256)
    assert cli_model.labels == api_model.labels
    assert data.identity == {"data_sha256": inputs.file_digest(path)} and data.label == str(path)
    assert inputs.python_pairs(data.source).identity == {"data_sha256": inputs.pairs_digest(data.source.data)}


def test_zoo_names_do_not_depend_on_the_search_code() -> None:
    """The zoo builds nothing of an alignment run: the run's inputs are made in ``inputs``."""
    from alignsearch import zoo

    for module in Path(zoo.__file__).parent.glob("*.py"):
        assert "alignsearch.search" not in module.read_text(), module
    assert not hasattr(zoo, "run_model")
