"""Alignments of language models on text, through the command line and the API: DAS on a pairs file,
behavioural MAS on a corpus, and every kind of bad input refused with one line before any training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.helpers import assert_error_line, body_refusal, refusal, run_here

pytest.importorskip("transformers")

FAST = [
    "alignment.max_steps=150",
    "alignment.val_every=50",
    "alignment.batch_size=64",
    "alignment.eval_batch_size=256",
    "hardware.progress_bar=false",
]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def count_rows() -> list[dict]:
    from alignsearch.text.toy import count_pair_rows

    return count_pair_rows(600, seed=0)


@pytest.fixture
def pairs_file(tmp_path: Path, count_rows) -> Path:
    """The count variable's pairs, with three rows that cannot be used (lines 2, 3 and 5)."""
    rows = list(count_rows)
    rows.insert(1, {**rows[1], "target": ""})
    rows.insert(2, {**rows[2], "marker": "banana"})
    rows.insert(4, "{not json")
    return write_jsonl(tmp_path / "count.jsonl", rows)


def test_das_on_a_pairs_file_finds_the_count_in_the_trained_lm_only(toy_lms, pairs_file, tmp_path) -> None:
    """One sweep over the trained model and its untrained copy; the file's bad rows are reported."""
    paths = f"model.path={toy_lms['gpt2']},{toy_lms['gpt2_untrained']}"
    result = run_here(
        "run_alignment.py", "-m", "model=lm", paths, "data=pairs", f"data.path={pairs_file}",
        "layer=0", "n_units=8", *FAST, zoo=tmp_path / "zoo", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "3 of 603 rows skipped: line 2: empty target" in result.stdout, result.stdout
    runs = {}
    for path in tmp_path.glob("multirun/run_alignment/*/*/*/results.json"):
        results = json.loads(path.read_text())
        runs[results["config"]["model"]] = results
    trained, untrained = runs["lm_gpt2"], runs["lm_gpt2_untrained"]
    for results, folder in ((trained, toy_lms["gpt2"]), (untrained, toy_lms["gpt2_untrained"])):
        assert Path(results["config"]["model.path"]) == Path(folder).resolve()  # the report groups by it
    for results in (trained, untrained):
        (record,) = results["records"]
        assert record["variable"] == "count" and record["direction"] == "0>0"
        assert set(record) >= {"iia", "iia_test", "token_iia", "iia_step0", "source", "target"}
        assert results["data"]["rows"] == 603 and [s["line"] for s in results["data"]["skipped"]] == [2, 3, 5]
        assert results["config"]["site"] == "layer.0" and results["config"]["n_units"] == 8
    assert trained["records"][0]["iia"] >= 0.9 and trained["records"][0]["iia_test"] >= 0.9
    assert untrained["records"][0]["iia"] <= 0.3  # nine number words: chance is about 0.1
    identities = [r["identity"]["models"][0]["weights_sha256"] for r in (trained, untrained)]
    assert identities[0] != identities[1] and trained["identity"]["data_sha256"]


def test_behavioural_mas_between_two_lms_on_a_corpus(toy_lms, tmp_path) -> None:
    from alignsearch.text.toy import count_sentences

    corpus = tmp_path / "texts.txt"
    corpus.write_text("\n".join(count_sentences(300, seed=3)) + "\n")
    result = run_here(
        "run_alignment.py", "model=lm", f"model.path={toy_lms['gpt2']}", "alignment=mas",
        f"+partner.model_settings.path={toy_lms['gpt2_terse']}", "data=corpus", f"data.path={corpus}",
        "layer=1", "n_units=32", "alignment.max_steps=60", "alignment.val_every=30", "hardware.progress_bar=false",
        zoo=tmp_path / "zoo", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (path,) = tmp_path.glob("outputs/run_alignment/*/results.json")
    results = json.loads(path.read_text())
    records = {r["direction"]: r for r in results["records"]}
    assert sorted(records) == ["0>0", "0>1", "1>0", "1>1"]
    assert records["0>1"]["source"] == "lm_gpt2" and records["0>1"]["target"] == "lm_gpt2_terse"
    assert records["0>0"]["iia"] == records["1>1"]["iia"] == 1.0  # own vectors on the same text: no change
    assert all(r["trained"] for r in records.values())
    # the terse fine-tune answers in another format: no swap makes one model predict the other's tokens
    assert max(records["0>1"]["iia"], records["1>0"]["iia"]) <= 0.2
    assert results["config"]["stepwise"] is True and results["data"]["kind"] == "corpus"
    cached = sorted(p.name.split("-")[0] for p in (path.parent / "predictions").glob("*.pt"))
    assert cached == ["lm_gpt2"] * 3 + ["lm_gpt2_terse"] * 3  # each model's predictions, per split


def test_das_from_python_rows(toy_lms, count_rows) -> None:
    """The API: rows a Python function produces (a generator here), the same alignment as the file's."""
    from alignsearch import api

    lm = api.language_model(toy_lms["llama"])
    pairs = api.text_pairs((row for row in count_rows), lm.tokenizer)
    assert len(pairs.splits["train"]) == 480 and not pairs.problems
    result = api.align(
        lm, data=pairs, layer=1, n_units=8, max_steps=150, val_every=50, batch_size=64,
        controls=["untrained", "random_subspace", "shuffled"],
    )  # fmt: skip
    (record,) = result.records
    assert record.variable == "count" and record.source == "lm_llama"
    assert result.iia() >= 0.9
    for control in ("untrained", "random_subspace", "shuffled"):  # nine number words: chance is about 0.1
        assert record.controls[control] <= 0.3, record
        assert 0 <= record.control_divergence[control] < float("inf"), record  # measured for text too


# -- bad input: one line, before any training -----------------------------------------------------------------
def text_args(folder: Path, data: Path, *extra: str) -> list[str]:
    return ["model=lm", f"model.path={folder}", "data=pairs", f"data.path={data}", *extra]


def test_bad_folders_and_files_are_refused_before_hydra(
    toy_lms, pairs_file, tmp_path, in_command_env
) -> None:
    gpt2 = toy_lms["gpt2"]
    assert_error_line(
        refusal("run_alignment.py", *text_args(tmp_path / "nowhere", pairs_file)),
        "model.path=", "a folder written by save_pretrained",
    )  # fmt: skip
    assert_error_line(
        refusal("run_alignment.py", *text_args(gpt2, tmp_path / "missing.jsonl")),
        "data.path=", "missing.jsonl", "an existing pairs file",
    )  # fmt: skip
    assert_error_line(
        refusal("run_alignment.py", "model=lm", f"model.path={gpt2}"), "data=None", "data=pairs"
    )
    assert_error_line(
        refusal("run_alignment.py", "model=gru", "data=pairs", f"data.path={pairs_file}"),
        "model=alignsearch.models.GRU", "model=lm",
    )  # fmt: skip
    corpus = write_jsonl(tmp_path / "texts.jsonl", [{"text": "apple . how many ? one"}] * 5)
    assert_error_line(
        refusal("run_alignment.py", "model=lm", f"model.path={gpt2}", "data=corpus", f"data.path={corpus}"),
        "alignment=das", "a two-model alignment",
    )  # fmt: skip


def copy_without(folder: Path, tmp_path: Path, pattern: str) -> Path:
    out = tmp_path / f"{folder.name}-without"
    shutil.copytree(folder, out)
    for path in out.glob(pattern):
        path.unlink()
    return out


def test_bad_models_and_data_are_refused_before_training(
    toy_lms, pairs_file, count_rows, tmp_path, in_command_env
) -> None:
    gpt2 = toy_lms["gpt2"]
    no_weights = copy_without(gpt2, tmp_path, "*.safetensors")
    assert_error_line(body_refusal("run_alignment.py", *text_args(no_weights, pairs_file)), "model.path=")
    no_tokenizer = copy_without(gpt2, tmp_path / "t", "tokenizer*")
    assert_error_line(
        body_refusal("run_alignment.py", *text_args(no_tokenizer, pairs_file)), "model.path=", "tokenizer"
    )
    not_lm = tmp_path / "not_lm"
    not_lm.mkdir()
    (not_lm / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 64}))
    for tokenizer_file in gpt2.glob("tokenizer*"):
        shutil.copy(tokenizer_file, not_lm)
    assert_error_line(
        body_refusal("run_alignment.py", *text_args(not_lm, pairs_file)),
        "model.path=",
        "a causal language model",
    )
    assert_error_line(
        body_refusal("run_alignment.py", *text_args(gpt2, pairs_file, "site=transformer.h.7")),
        "site=transformer.h.7", "close matches: transformer.h",
    )  # fmt: skip

    def refused_rows(rows: list, *says: str) -> None:
        path = write_jsonl(tmp_path / "bad.jsonl", rows)
        assert_error_line(body_refusal("run_alignment.py", *text_args(gpt2, path)), "data.path=", *says)

    good = count_rows[:2]
    refused_rows([*good, *["{oops"] * 5], "line 3:", "JSON")
    refused_rows(
        [*good, *[{"base": r["base"], "target": r["target"]} for r in count_rows[:5]]], "line 3:", "source"
    )
    refused_rows([*good, *[{**r, "position": 40} for r in count_rows[:5]]], "line 3:", "position")
    refused_rows([*good, *[{**r, "marker": "banana"} for r in count_rows[:5]]], "line 3:", "banana")


def test_models_whose_tokenizers_disagree_are_refused(toy_lms, pairs_file, tmp_path, in_command_env) -> None:
    other = tmp_path / "other"  # the fine-tuned model, with two words' ids swapped in its tokenizer
    shutil.copytree(toy_lms["gpt2_terse"], other)
    spec = json.loads((other / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    vocab["apple"], vocab["pear"] = vocab["pear"], vocab["apple"]
    (other / "tokenizer.json").write_text(json.dumps(spec))
    corpus = tmp_path / "texts.txt"
    corpus.write_text("apple pear . how many ? two\n" * 5)
    mas = [
        "model=lm",
        f"model.path={toy_lms['gpt2']}",
        "alignment=mas",
        f"+partner.model_settings.path={other}",
    ]
    assert_error_line(
        body_refusal("run_alignment.py", *mas, "data=corpus", f"data.path={corpus}"),
        "partner.model", "tokenizers agree on the corpus", "line 1",
    )  # fmt: skip
    assert_error_line(
        body_refusal("run_alignment.py", *mas, "data=pairs", f"data.path={pairs_file}"),
        "partner.model_settings.path", "the same tokenizer",
    )  # fmt: skip


# -- natural targets: the counterfactual-latent loss on text pairs ----------------------------------------
NO_NATURAL_TARGETS = (
    "is not allowed: expected natural targets for the counterfactual-latent loss: the pairs give no "
    'counterfactual prompts (add a "counterfactual" field: a prompt that naturally holds the intervened state)'
)


def some_counterfactuals(n: int, seed: int) -> list[dict]:
    """Count rows with a counterfactual prompt, but every third row without one."""
    from alignsearch.text.toy import count_pair_rows

    rows = count_pair_rows(n, seed=seed, counterfactual=True)
    return [
        {k: v for k, v in r.items() if k != "counterfactual"} if i % 3 == 2 else r for i, r in enumerate(rows)
    ]


def test_latent_tracks_get_the_models_own_activation_at_the_counterfactual(toy_lms) -> None:
    from alignsearch import api
    from alignsearch.models import hooks
    from alignsearch.search.pairs import Track
    from alignsearch.search.text_data import TextPairSource

    lm = api.language_model(toy_lms["gpt2"])
    pairs = api.text_pairs(some_counterfactuals(60, seed=1), lm.tokenizer)
    latent, behavioural = Track(0, 0, "count", latent=True), Track(0, 0, "count")
    train, evals, _ = TextPairSource(pairs, "count").build([latent], [lm], ["layer.1"], seed=0)
    (plain,) = TextPairSource(pairs, "count").build([behavioural], [lm], ["layer.1"], seed=0)[0].values()
    assert "cl" not in plain and "cl_found" not in plain
    for split, batch in [("train", train[latent.name]), *((s, b[latent.name]) for s, b in evals.items())]:
        data = pairs.splits[split]
        assert torch.equal(batch["cl_found"], data.has_counterfactual)
        assert batch["cl"].shape == (len(data), 64) and batch["cl"].dtype == torch.float32
        for i in range(len(data)):
            if not data.has_counterfactual[i]:
                assert not batch["cl"][i].any()
                continue
            ids = data.counterfactual_ids[i : i + 1]
            with torch.no_grad():
                own = hooks.site_activations(lm, ids, "layer.1")[0, data.counterfactual_pos[i]]
            torch.testing.assert_close(batch["cl"][i], own.float(), rtol=1e-5, atol=1e-5)
    found = torch.cat([train[latent.name]["cl_found"], *(b[latent.name]["cl_found"] for b in evals.values())])
    assert int(found.sum()) == pairs.natural_targets == 40 and not found.all()


def test_a_latent_loss_on_pairs_without_counterfactuals_is_refused_in_one_line(
    toy_lms, pairs_file, count_rows, in_command_env
) -> None:
    from alignsearch import api
    from alignsearch.errors import ConfigError

    line = body_refusal(
        "run_alignment.py", *text_args(toy_lms["gpt2"], pairs_file), "alignment.cl_directions=[[0,0]]"
    )
    assert line == f"error: alignment.cl_directions=[[0, 0]] {NO_NATURAL_TARGETS}"
    lm = api.language_model(toy_lms["gpt2"])
    pairs = api.text_pairs(count_rows[:100], lm.tokenizer)
    with pytest.raises(ConfigError) as caught:
        api.align(lm, data=pairs, layer=1, n_units=8, max_steps=5, cl_directions=[[0, 0]])
    assert str(caught.value) == f"cl_directions=[[0, 0]] {NO_NATURAL_TARGETS}"
    with pytest.raises(ConfigError) as caught:
        api.align(lm, data=pairs, layer=1, n_units=8, max_steps=5, cl_weight=0.5)
    assert str(caught.value) == f"cl_weight=0.5 {NO_NATURAL_TARGETS}"


def test_das_with_the_latent_loss_on_text_pairs_with_natural_targets(toy_lms) -> None:
    import math

    from alignsearch import api

    lm = api.language_model(toy_lms["gpt2"])
    pairs = api.text_pairs(some_counterfactuals(120, seed=2), lm.tokenizer)
    result = api.align(
        lm, data=pairs, layer=1, n_units=8, max_steps=20, val_every=10, batch_size=32, cl_directions=[[0, 0]]
    )
    (record,) = result.records
    assert record.loss == "both" and math.isfinite(record.cl_loss) and record.cl_loss >= 0
    for space in ("full", "subspace"):  # the weight on behaviour, both forms, on a language model too
        weighted = api.align(
            lm, data=pairs, layer=1, n_units=8, max_steps=20, val_every=10, batch_size=32, cl_weight=0.5,
            cl_space=space,
        )  # fmt: skip
        assert weighted.records[0].loss == "both" and math.isfinite(weighted.records[0].cl_loss)
    assert result.results.data["natural_targets"] == pairs.natural_targets == 80


def test_the_run_says_how_many_pairs_have_a_natural_target(toy_lms, tmp_path, in_command_env, capsys) -> None:
    from alignsearch.cli.text_run import text_inputs
    from tests.helpers import compose_config

    path = write_jsonl(tmp_path / "some.jsonl", some_counterfactuals(30, seed=3))
    cfg = compose_config("run_alignment", text_args(toy_lms["gpt2"], path, f"paths.output_dir={tmp_path}"))
    _, data = text_inputs(cfg, tmp_path)
    assert (
        capsys.readouterr().out
        == "pairs: all 30 rows used; 20 of 30 pairs have a natural target (a counterfactual prompt)\n"
    )
    assert data.summary["natural_targets"] == 20


def test_a_run_at_a_position_says_how_many_pairs_it_used(toy_lms) -> None:
    from alignsearch import api
    from alignsearch.text.toy import count_pair_rows

    lm = api.language_model(toy_lms["gpt2"])
    rows = count_pair_rows(300, seed=0)
    pairs = api.text_pairs(rows, lm.tokenizer)
    result = api.align(
        lm, data=pairs, layer=1, n_units=8, max_steps=5, position="marker:pear", progress=False
    )
    summary = result.results.data
    assert summary["position"] == "marker:pear" and pairs.duplicates == 0
    # the pairs whose prompts both name a pear (the others lack the position and are left out)
    named = sum("pear" in row["base"] and "pear" in row["source"] for row in rows)
    assert sum(summary["pairs_at_position"].values()) == named < sum(summary["pairs"].values()) == len(rows)
