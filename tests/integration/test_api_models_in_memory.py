"""The Python API with models in memory: a SequenceModel, a plain ``nn.Module`` (aligned at a module
path) and a HuggingFace LM with its tokenizer align like the same model from the zoo or its folder, and
``api.iia`` evaluates what they trained again; a model that cannot read the task's tokens is refused before
it runs, and ``api.iia`` takes one model alone and refuses pairs and models that do not fit. The arguments'
checks: ``test_api_arguments.py``; the command line's records for the same settings:
``test_cli_and_api_agree.py``."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from alignsearch import api
from alignsearch.models import GRU
from tests.helpers import TINY_ALIGNMENT, TinyNet, refused, run_pairs

QUICK = {"max_steps": 20, "val_every": 10}
"""Tiny alignments: numbers that are not meant to be good, only the same through every path."""


@pytest.fixture(scope="module")
def das(gru) -> api.AlignmentResult:
    return api.align(gru, n_units=8, overrides=TINY_ALIGNMENT, **QUICK)


def _task(name: str):
    from alignsearch.components import build_task

    return build_task(api.config("train_task_model", [f"task={name}"]).task)


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


def test_pairs_of_another_task_are_refused_not_scored(gru, das) -> None:
    other = api.pairs(_task("sameobject"), "updown", "count", n=50)
    message = refused(api.iia, das, [gru], other)
    assert message.startswith("pairs='pairs of task sameobject")
    assert "expected pairs of task multiobject" in message
