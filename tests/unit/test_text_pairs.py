"""Counterfactual text pairs: reading JSONL/CSV files and Python rows, tokenising with the model's tokenizer,
positions (last, index, marker), row problems and splits (alignsearch.text.pairs)."""

from __future__ import annotations

import csv
import json
from itertools import product
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

from alignsearch.errors import ConfigError  # noqa: E402
from alignsearch.text.pairs import (  # noqa: E402
    PairsData,
    RowProblem,
    TextPairs,
    describe,
    read_pairs,
    read_rows,
    text_pairs,
)

# ids as in the TextPairs docstring: [PAD] 0, [BOS] 2, the 3, cat 4, sat 5, on 6, mat 8, dog 9, ran 10
SPECIAL = ["[PAD]", "[UNK]", "[BOS]"]
WORDS = [*SPECIAL, "the", "cat", "sat", "on", "a", "mat", "dog", "ran"]
WORDS += ["two", "plus", "one", "is", "three", "four"]
PAD, BOS = 0, 2
ID = {w: i for i, w in enumerate(WORDS)}

# the docstring's two rows, then a validation row
EXAMPLE = [
    {"base": "the cat sat on the", "source": "the dog ran", "target": "mat", "base_marker": "cat sat"},
    {"base": "the dog", "source": "the cat", "target": "sat on", "position": -2},
    {"base": "two plus one is", "source": "one plus one is", "target": "three"},
]
EXAMPLE = [
    {**row, "split": split} for row, split in zip(EXAMPLE, ["train", "train", "validation"], strict=True)
]


@pytest.fixture(scope="module")
def words() -> PreTrainedTokenizerFast:
    """Word-level: one token per word (split at whitespace and punctuation), [BOS] before every prompt."""
    tok = Tokenizer(models.WordLevel(ID, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", BOS)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]"
    )


@pytest.fixture(scope="module")
def bpe() -> PreTrainedTokenizerFast:
    """Byte-level BPE (as GPT-2) trained on a few sentences; no pad token, so it pads with its eos."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    sentences = ["one plus two is three", "two plus two is four", "the cat sat on the mat", "three cats sat"]
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(sentences * 5, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


COUNTERFACTUAL_FIELDS = ("counterfactual_ids", "counterfactual_pos", "has_counterfactual")


def write_jsonl(path: Path, rows: list, raw: dict[int, str] | None = None) -> Path:
    """``rows`` one a line; ``raw`` puts a literal line at a 1-based line number instead."""
    lines = [json.dumps(r) for r in rows]
    for line, text in sorted((raw or {}).items()):
        lines.insert(line - 1, text)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def ids_of(*words: str) -> list[int]:
    return [ID[w] for w in words]


def varied(row: dict, n: int) -> list[dict]:
    """``n`` copies of ``row`` with different sources ("the cat cat", "the cat dog", ...): no two are
    duplicates, and none is a duplicate of ``row``."""
    words = ["cat", "dog", "mat", "a", "on", "sat", "ran"]
    assert n <= len(words) ** 2
    return [{**row, "source": f"the {a} {b}"} for a, b in list(product(words, repeat=2))[:n]]


def assert_same(a: PairsData, b: PairsData, line_shift: int = 0) -> None:
    """The same pairs in every split; ``b``'s line numbers are ``a``'s plus ``line_shift``."""
    assert a.splits.keys() == b.splits.keys()
    for name, x in a.splits.items():
        y = b.splits[name]
        for field in ("ids", "task_mask", "base_pos", "source_ids", "source_pos", *COUNTERFACTUAL_FIELDS):
            assert torch.equal(getattr(x, field), getattr(y, field)), (name, field)
        assert torch.equal(x.lines + line_shift, y.lines), name
    assert [(p.line + line_shift, p.reason) for p in a.problems] == [(p.line, p.reason) for p in b.problems]
    assert b.n_rows == a.n_rows


def test_the_docstring_example_exactly(tmp_path, words):
    data = read_pairs(write_jsonl(tmp_path / "pairs.jsonl", EXAMPLE), words)
    train = data.splits["train"]
    assert isinstance(train, TextPairs) and len(train) == 2
    assert train.ids.tolist() == [[2, 3, 4, 5, 6, 3, 8], [2, 3, 9, 5, 6, 0, 0]]
    assert train.task_mask.int().tolist() == [[0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 1, 1, 0, 0]]
    assert train.base_pos.tolist() == [3, 1]  # "cat sat" ends at sat; -2 of [BOS] the dog
    assert train.source_ids.tolist() == [[2, 3, 9, 10], [2, 3, 4, 0]]
    assert train.source_pos.tolist() == [3, 1]  # last by default; -2 of [BOS] the cat
    assert train.lines.tolist() == [1, 2]
    val = data.splits["val"]
    assert val.ids.tolist() == [[BOS, *ids_of("two", "plus", "one", "is", "three")]]
    assert val.task_mask.int().tolist() == [[0, 0, 0, 0, 0, 1]]
    assert val.lines.tolist() == [3]
    assert len(data.splits["test"]) == 0 and data.splits["test"].ids.shape == (0, 0)
    assert data.problems == [] and data.n_rows == 3
    assert data.describe() == "all 3 rows used"


POSITION_ROWS = [
    # (fields besides the texts, expected base_pos, expected source_pos);
    # base: [BOS] two plus one is (5 tokens), source: [BOS] one plus one (4 tokens)
    ({}, 4, 3),
    ({"position": "last"}, 4, 3),
    ({"position": 0}, 0, 0),
    ({"position": -3}, 2, 1),
    ({"position": "-3"}, 2, 1),  # as a CSV cell gives it
    ({"marker": "plus"}, 2, 2),
    ({"marker": "plus one"}, 3, 3),  # a multi-token marker: its last token
    ({"marker": "one"}, 3, 1),  # the first occurrence in each prompt
    ({"base_position": 1, "source_marker": "one"}, 1, 1),
    ({"base_position": 1, "source_position": "last"}, 1, 3),
    ({"base_position": -1, "source_marker": "plus"}, 4, 2),
    ({"position": "", "base_position": 1}, 1, 3),  # an empty CSV cell is no shared position
    ({"position": 2.0, "source_position": float("nan")}, 2, 2),  # pandas: ints with gaps, NaN not given
]


@pytest.mark.parametrize(("fields", "base_pos", "source_pos"), POSITION_ROWS)
def test_positions(words, fields, base_pos, source_pos):
    row = {"base": "two plus one is", "source": "one plus one", "target": "three", **fields}
    data = text_pairs([{**row, "split": "train"}, {**row, "target": "four", "split": "val"}], words)
    pairs = data.splits["train"]
    assert (pairs.base_pos.item(), pairs.source_pos.item()) == (base_pos, source_pos)
    assert pairs.source_ids.tolist() == [[BOS, *ids_of("one", "plus", "one")]]


def test_jsonl_and_csv_give_the_same_pairs(tmp_path, words):
    rows = [
        {"base": "the cat sat on the", "source": "the dog ran", "target": "mat", "position": ""},
        {"base": "the dog", "source": "the cat", "target": "sat on", "position": "-2"},
        {"base": "two plus one is", "source": "one plus one", "target": "three", "base_marker": "plus"},
        {"base": "two plus two is", "source": "one plus", "target": "four", "source_marker": "one"},
        {"base": "a cat", "source": "a dog", "target": "", "position": ""},
    ]
    from_jsonl = read_pairs(write_jsonl(tmp_path / "p.jsonl", rows), words, seed=3, fractions=(0.5, 0.5, 0))
    from_csv = read_pairs(write_csv(tmp_path / "p.csv", rows), words, seed=3, fractions=(0.5, 0.5, 0))
    assert from_csv.problems == [RowProblem(6, "empty target")]  # the header is line 1
    assert_same(from_jsonl, from_csv, line_shift=1)
    csv_rows = read_rows(tmp_path / "p.csv")
    assert [r.line for r in csv_rows] == [2, 3, 4, 5, 6]
    assert csv_rows[1].fields["position"] == "-2"


def test_file_lines_count_quoted_newlines_blank_lines_and_only_real_line_breaks(tmp_path):
    csv_path = tmp_path / "p.csv"
    csv_path.write_text('base,source,target\n"two plus\none is",one,three\n\nthe cat,the dog,mat,extra\n')
    rows = read_rows(csv_path)
    assert [(r.line, r.problem) for r in rows] == [(2, None), (5, "4 fields where the header has 3")]
    assert rows[0].fields["base"] == "two plus\none is"
    jsonl_path = tmp_path / "p.jsonl"  # U+2028 is allowed raw inside a JSON string; it ends no line
    jsonl_path.write_text('{"base": "a\u2028b"}\r\n\n{"base": "c"}\n', encoding="utf-8")
    assert [(r.line, r.fields) for r in read_rows(jsonl_path)] == [
        (1, {"base": "a\u2028b"}),
        (3, {"base": "c"}),
    ]


def test_bad_rows_are_reported_with_line_and_reason(tmp_path, words):
    good = {"base": "two plus one is", "source": "one plus one is", "target": "three", "split": "train"}
    bad = [
        {**good, "target": ""},  # line 2
        {**good, "marker": "cat"},  # 3
        {**good, "base": "the cat sat on the mat the cat sat on the mat"},  # 4: 13 + 1 tokens
        {**good, "split": "dev"},  # 6 (line 5 is not JSON)
        {**good, "base_position": 7},  # 8 (line 7 is a JSON list)
        {**good, "base": 3},  # 9
        {**good, "source_marker": "plus", "source_position": 1},  # 10
        {key: value for key, value in good.items() if key != "source"},  # 11
        {**good, "position": "first"},  # 12
    ]
    rows = [good, *bad, *varied(good, 9), *varied({**good, "target": "four"}, 2)]
    rows[-2:] = [{**rows[-2], "split": "val"}, {**rows[-1], "split": "test"}]
    path = write_jsonl(tmp_path / "p.jsonl", rows, raw={5: "{not json", 7: "[1, 2]"})
    data = read_pairs(path, words, max_length=12)
    assert [(p.line, p.reason) for p in data.problems] == [
        (2, "empty target"),
        (3, "marker 'cat' not in the base"),
        (4, "base + target are 14 tokens, more than 12"),
        (5, "not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
        (6, "split 'dev' is not train, val, validation or test"),
        (7, "a JSON list, not an object"),
        (8, "base position 7 out of range for a 5-token base"),
        (9, "base is not text (int)"),
        (10, "both source_position and source_marker given"),
        (11, "no source"),
        (12, "position 'first' is not a token index or 'last'"),
    ]
    assert data.n_rows == 23
    assert (len(data.splits["train"]), len(data.splits["val"]), len(data.splits["test"])) == (10, 1, 1)
    assert data.splits["train"].lines.tolist() == [1, *range(13, 22)]
    assert data.describe() == (
        "11 of 23 rows skipped: line 2: empty target; line 3: marker 'cat' not in the base; "
        "line 4: base + target are 14 tokens, more than 12; and 8 more"
    )


def test_a_file_whose_rows_mostly_fail_is_one_config_error(tmp_path, words):
    good = {"base": "two plus one is", "source": "one plus one is", "target": "three"}
    rows = [good, {**good, "marker": "x"}, good, {**good, "target": ""}, *[{**good, "base": ""}] * 5, good]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    with pytest.raises(ConfigError) as err:
        read_pairs(path, words)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"data.path={path} is not allowed: expected a pairs file whose rows are mostly")
    assert message.endswith(
        "7 of 10 rows failed (line 2: marker 'x' not in the base; line 4: empty target; "
        "line 5: empty base; and 4 more)"
    )


def test_a_split_column_is_honoured(words):
    row = {"base": "two plus one is", "source": "one plus one is", "target": "three"}
    names = ["test", "train", "validation", "train", "val", " Train", "test"]
    rows = [{**r, "split": s} for r, s in zip(varied(row, len(names)), names, strict=True)]
    data = text_pairs(rows, words, fractions=(0.2, 0.2, 0.6))
    lines = {name: pairs.lines.tolist() for name, pairs in data.splits.items()}
    assert lines == {"train": [2, 4, 6], "val": [3, 5], "test": [1, 7]}


def test_a_split_column_without_val_rows_is_an_error(words):
    row = {"base": "two plus one is", "source": "one plus one is", "target": "three", "split": "train"}
    with pytest.raises(ConfigError, match=r"data.path=mine .* a pairs file with val rows \(none of 2"):
        text_pairs(varied(row, 2), words, source_name="mine")


def test_rows_without_a_split_where_others_have_one_are_problems(words):
    row = {"base": "two plus one is", "source": "one plus one is", "target": "three"}
    a, b, c = varied(row, 3)
    data = text_pairs([{**a, "split": "train"}, b, {**c, "split": "val"}], words)
    assert data.problems == [RowProblem(2, "no split (other rows name theirs)")]


def test_the_seeded_split_is_deterministic_and_covers_every_usable_row_once(words):
    row = {"source": "one plus one is", "target": "three"}
    rows = [{**r, "base": "two plus one is" if i % 7 else ""} for i, r in enumerate(varied(row, 44))]
    first, again, other = (text_pairs(rows, words, seed=s) for s in (5, 5, 6))
    assert_same(first, again)
    lines = {name: pairs.lines.tolist() for name, pairs in first.splits.items()}
    assert [len(v) for v in lines.values()] == [29, 4, 4]  # 37 usable rows: val and test round(3.7)
    assert sorted(sum(lines.values(), [])) == [i + 1 for i in range(44) if i % 7]
    assert all(v == sorted(v) for v in lines.values())  # each split keeps file order
    assert other.splits["val"].lines.tolist() != lines["val"]
    assert len(first.problems) == 7 and first.describe().startswith(
        "7 of 44 rows skipped: line 1: empty base"
    )


def test_small_data_still_gives_val_and_test_rows(words):
    row = {"base": "two plus one is", "source": "one plus one is", "target": "three"}
    data = text_pairs(varied(row, 3), words)
    assert [len(p) for p in data.splits.values()] == [1, 1, 1]
    for n in (1, 2):  # val and test take a row each: train is empty
        with pytest.raises(ConfigError, match=rf"a pairs file with train rows \(none of {n} usable rows by"):
            text_pairs(varied(row, n), words)


def test_python_rows_and_a_generator_give_the_same_as_the_file(tmp_path, words):
    rows = [
        {"base": "the cat sat on the", "source": "the dog ran", "target": "mat", "marker": "the"},
        {"base": "the dog", "source": "the cat", "target": "sat on", "position": -2},
        {"base": "two plus one is", "source": "one plus one", "target": "three", "base_marker": "plus"},
        {"base": "two plus two is", "source": "one plus", "target": ""},
        {"base": "two plus two is", "source": "one plus", "target": "four", "source_position": None},
        {"base": "a cat", "source": "a dog", "target": "sat", "position": 9},
    ]
    from_file = read_pairs(
        write_jsonl(tmp_path / "p.jsonl", rows), words, seed=1, fractions=(0.5, 0.25, 0.25)
    )
    from_list = text_pairs(rows, words, seed=1, fractions=(0.5, 0.25, 0.25))
    from_generator = text_pairs((dict(r) for r in rows), words, seed=1, fractions=(0.5, 0.25, 0.25))
    assert [p.line for p in from_file.problems] == [4, 6]
    assert_same(from_file, from_list)
    assert_same(from_file, from_generator)


def test_byte_level_bpe_targets_with_a_leading_space_and_markers_by_offsets(bpe):
    rows = [
        {"base": "one plus two is", "source": "two plus two is", "target": " three", "split": "train"},
        {"base": "one plus two is", "source": "three cats sat", "target": "three", "split": "val"},
        {
            "base": "the cat sat on",
            "source": "three cats sat",
            "marker": "ca",
            "target": " the",
            "split": "train",
        },
    ]
    data = text_pairs(rows, bpe)
    eos = bpe.eos_token_id
    assert bpe.pad_token_id is None  # padding falls back to the eos token
    train, val = data.splits["train"], data.splits["val"]
    prompt = bpe("one plus two is")["input_ids"]
    assert bpe.convert_ids_to_tokens(prompt) == ["one", "Ġplus", "Ġtwo", "Ġis"]
    space_three = bpe.convert_tokens_to_ids("Ġthree")
    assert train.ids[0].tolist() == [*prompt, space_three]  # " three": one token, the word after a space
    three = bpe("three", add_special_tokens=False)["input_ids"]  # "three" glued on: another token
    assert val.ids[0].tolist() == [*prompt, *three] and space_three not in three
    the_cat = bpe("the cat sat on")["input_ids"]
    padding = [eos] * (train.ids.shape[1] - len(the_cat) - 1)
    assert train.ids[1].tolist() == [*the_cat, bpe.convert_tokens_to_ids("Ġthe"), *padding]
    assert train.task_mask.int().tolist() == [[0, 0, 0, 0, 1], [0, 0, 0, 0, 1]]
    # "ca" ends inside "Ġcat" (base, token 1) and inside "Ġcats" (source, token 1)
    assert bpe.convert_ids_to_tokens(train.source_ids[1].tolist())[:2] == ["three", "Ġcats"]
    assert train.base_pos.tolist() == [3, 1] and train.source_pos.tolist() == [3, 1]
    cats = bpe("three cats sat")["input_ids"]
    assert train.source_ids[1].tolist() == cats + [eos] * (train.source_ids.shape[1] - len(cats))


def test_bad_settings_and_files(tmp_path, words):
    row = {"base": "two plus one is", "source": "one plus one is", "target": "three"}
    with pytest.raises(ConfigError, match=r"data.path=.*pairs.txt is not allowed: expected a .jsonl or .csv"):
        read_rows(tmp_path / "pairs.txt")
    with pytest.raises(ConfigError, match=r"expected an existing .jsonl or .csv file"):
        read_rows(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigError, match=r"data.fractions=\[0.5,0.5,0.5\]"):
        text_pairs([row] * 4, words, fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ConfigError, match=r"data.max_length=0"):
        text_pairs([row] * 4, words, max_length=0)
    with pytest.raises(ConfigError, match=r"data.path=rows .* at least one row"):
        text_pairs([], words)
    (tmp_path / "empty.csv").write_text("")
    assert read_rows(tmp_path / "empty.csv") == []


def test_describe_without_a_row_count():
    assert describe([RowProblem(4, "empty target")]) == "1 row skipped: line 4: empty target"
    assert describe([]) == "no rows skipped"


def test_a_python_row_that_is_not_a_mapping_is_a_problem(words):
    row = {"base": "two plus one is", "source": "one plus one is", "target": "three"}
    a, b, c = varied(row, 3)
    data = text_pairs([a, ("two", "one", "three"), b, c], words)
    assert data.problems == [RowProblem(2, "a tuple, not a mapping of fields")]


def test_a_target_with_unknown_text_is_a_problem_and_an_unknown_prompt_word_is_not(tmp_path, words):
    good = {"base": "two plus one is", "source": "one plus one is", "target": "three"}
    rows = [
        *varied(good, 4),  # lines 1-4
        {**good, "target": "zebra"},  # 5
        {**good, "target": "sat on zebra yak zebra"},  # 6
        {**good, "base": "two plus zebra is"},  # 7: a prompt may hold unknown text
    ]
    data = read_pairs(write_jsonl(tmp_path / "p.jsonl", rows), words, fractions=(0.6, 0.2, 0.2))
    assert [(p.line, p.reason) for p in data.problems] == [
        (5, "target 'zebra' has 'zebra', unknown to the tokenizer (it would be [UNK])"),
        (
            6,
            "target 'sat on zebra yak zebra' has 'zebra' and 'yak', unknown to the tokenizer (it would be [UNK])",
        ),
    ]
    lines = sorted(line for pairs in data.splits.values() for line in pairs.lines.tolist())
    assert lines == [1, 2, 3, 4, 7]
    for pairs in data.splits.values():
        assert not (pairs.ids[pairs.task_mask] == words.unk_token_id).any()


def test_a_byte_level_tokenizer_has_no_unknown_targets(bpe):
    """As GPT-2's: its unknown token is its eos token, written out in a target it is no unknown text."""
    from tokenizers import Tokenizer

    gpt2_like = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(bpe.backend_tokenizer.to_str()),
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    base = {"base": "one plus two is", "source": "two plus two is"}
    rows = [
        {**base, "target": " three", "split": "train"},
        {**base, "target": " three<|endoftext|>", "split": "train"},
        {**base, "target": " zebra \u2603", "split": "val"},  # text it never saw: bytes, no unknown token
    ]
    data = text_pairs(rows, gpt2_like)
    assert data.problems == [] and data.duplicates == 0
    eos = gpt2_like.eos_token_id
    assert gpt2_like.unk_token_id == eos
    train = data.splits["train"]
    assert train.ids[1][train.task_mask[1]].tolist()[-1] == eos
    assert eos not in data.splits["val"].ids[0][data.splits["val"].task_mask[0]].tolist()


def test_a_shared_position_or_marker_with_a_per_prompt_one_is_a_problem(tmp_path, words):
    good = {"base": "two plus one is", "source": "one plus one is", "target": "three"}
    conflicting = [
        ({"position": 1, "base_position": 2}, "position (for every prompt) conflicts with base_position"),
        (
            {"position": 1, "source_position": "last"},
            "position (for every prompt) conflicts with source_position",
        ),
        ({"marker": "plus", "base_position": -1}, "marker (for every prompt) conflicts with base_position"),
        (
            {"marker": "plus", "source_marker": "one"},
            "marker (for every prompt) conflicts with source_marker",
        ),
        ({"position": 0, "base_marker": "plus"}, "position (for every prompt) conflicts with base_marker"),
        (
            {"position": 1, "marker": "plus", "base_position": 1, "source_marker": "one"},
            "position and marker (for every prompt) conflict with base_position and source_marker",
        ),
    ]
    fine = [{"position": "", "base_position": 1}, {"position": None, "source_marker": "cat"}]
    rows = [*varied(good, 8), *({**good, **fields} for fields, _ in conflicting)]
    rows += [
        {**row, **fields} for row, fields in zip(varied({**good, "target": "four"}, 2), fine, strict=True)
    ]
    for path in (write_jsonl(tmp_path / "p.jsonl", rows), write_csv(tmp_path / "p.csv", rows)):
        shift = path.suffix == ".csv"  # the header is line 1
        data = read_pairs(path, words)
        assert [(p.line, p.reason) for p in data.problems] == [
            (9 + i + shift, reason) for i, (_, reason) in enumerate(conflicting)
        ]
        used = sorted(line for pairs in data.splits.values() for line in pairs.lines.tolist())
        assert used == [line + shift for line in [*range(1, 9), 15, 16]]


def pair_keys(pairs: TextPairs) -> list[tuple]:
    """Each pair as the model sees it, without the split's padding: the base and target ids, where the
    target starts, the source ids and both positions."""
    keys = []
    for i in range(len(pairs)):
        mask = pairs.task_mask[i].nonzero().flatten().tolist()
        source = pairs.source_ids[i].tolist()
        while source and source[-1] == PAD:
            source.pop()
        ids = pairs.ids[i, : mask[-1] + 1].tolist()
        keys.append(
            (tuple(ids), mask[0], pairs.base_pos[i].item(), tuple(source), pairs.source_pos[i].item())
        )
    return keys


def test_duplicate_rows_are_dropped_before_the_split(tmp_path, words):
    row = {"base": "two plus one is", "target": "three"}
    distinct = varied(row, 30)
    rows = [*distinct, *distinct, *distinct[:10]]  # lines 31-70 repeat lines 1-30
    rows += [
        {**distinct[1], "position": -1},  # 71: the same positions, written out
        {**distinct[1], "source_marker": "dog"},  # 72: "the cat dog": the last token again
        {**distinct[1], "base": "two  plus one is"},  # 73: the same tokens
        {**distinct[1], "base_position": 0},  # 74: another pair
        {**distinct[1], "target": ""},  # 75: a problem, no duplicate
    ]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    data = read_pairs(path, words)
    assert data.duplicates == 43 and data.n_rows == 75
    assert data.problems == [RowProblem(75, "empty target")]
    assert data.describe() == "43 duplicate rows dropped; 1 of 75 rows skipped: line 75: empty target"
    lines = sorted(line for pairs in data.splits.values() for line in pairs.lines.tolist())
    assert lines == [*range(1, 31), 74]  # the first row of each pair
    keys = {name: pair_keys(pairs) for name, pairs in data.splits.items()}
    assert sum(len(k) for k in keys.values()) == len(set(sum(keys.values(), []))) == 31
    assert not set(keys["test"]) & set(keys["train"]) and not set(keys["val"]) & set(keys["train"])
    from_python = text_pairs(rows, words)
    assert_same(data, from_python)
    assert from_python.duplicates == 43
    assert text_pairs(distinct, words).describe() == "all 30 rows used"
    assert (
        text_pairs(distinct + distinct[:1], words).describe() == "30 of 31 rows used, 1 duplicate row dropped"
    )


def test_a_duplicate_in_another_split_is_dropped_too(words):
    row = {"base": "two plus one is", "target": "three"}
    a, b, c = varied(row, 3)
    rows = [{**a, "split": "train"}, {**b, "split": "val"}, {**c, "split": "test"}, {**a, "split": "test"}]
    data = text_pairs(rows, words)
    assert data.duplicates == 1 and data.problems == []
    assert {name: pairs.lines.tolist() for name, pairs in data.splits.items()} == {
        "train": [1],
        "val": [2],
        "test": [3],
    }


def test_a_file_of_one_row_repeated_is_refused_in_one_line(tmp_path, words):
    row = {"base": "two plus one is", "source": "one plus one is", "target": "three"}
    path = write_jsonl(tmp_path / "p.jsonl", [row] * 300)
    with pytest.raises(ConfigError) as err:
        read_pairs(path, words)
    message = str(err.value)
    assert "\n" not in message
    assert message == (
        f"data.path={path} is not allowed: expected a pairs file with train rows (none of 1 usable rows by "
        "fractions [0.8, 0.1, 0.1], after dropping 299 rows repeating earlier ones)"
    )
    with pytest.raises(
        ConfigError, match=r"with val rows \(none of 1 usable rows by the split column, after"
    ):
        text_pairs([{**row, "split": s} for s in ["train", "val", "test"] * 100], words)


# -- counterfactual prompts: the natural targets of the counterfactual-latent loss ----------------------------
COUNTERFACTUAL_ROWS = [
    # (fields besides base, source and target, expected counterfactual ids, expected position)
    ({"counterfactual": "two plus two is"}, ["two", "plus", "two", "is"], 4),  # last by default
    ({"counterfactual": "two plus two is", "position": -2}, ["two", "plus", "two", "is"], 3),
    ({"counterfactual": "the cat sat on", "counterfactual_marker": "cat"}, ["the", "cat", "sat", "on"], 2),
    ({"counterfactual": "one plus two is", "marker": "plus"}, ["one", "plus", "two", "is"], 2),
    ({"counterfactual": "two plus two", "counterfactual_position": 0}, ["two", "plus", "two"], 0),
    ({"counterfactual": "a dog ran", "counterfactual_position": "last"}, ["a", "dog", "ran"], 3),
    ({"counterfactual": "a dog", "base_position": 1}, ["a", "dog"], 2),  # base's own field: cf's last
]


def test_counterfactual_prompts_and_their_positions(words):
    good = {"base": "two plus one is", "source": "one plus one is", "target": "three"}
    rows = [{**good, **fields, "split": "train"} for fields, _, _ in COUNTERFACTUAL_ROWS]
    rows += [{**good, "split": "train"}, {**good, "target": "four", "split": "val"}]  # no counterfactual
    data = text_pairs(rows, words)
    train = data.splits["train"]
    assert train.lines.tolist() == list(range(1, 9))
    n = len(COUNTERFACTUAL_ROWS)
    assert train.has_counterfactual.tolist() == [True] * n + [False]
    assert train.counterfactual_pos.tolist() == [pos for _, _, pos in COUNTERFACTUAL_ROWS] + [0]
    assert train.counterfactual_ids.shape == (n + 1, 5)
    for i, (_, tokens, _) in enumerate(COUNTERFACTUAL_ROWS):
        expected = [BOS, *ids_of(*tokens)]
        assert train.counterfactual_ids[i].tolist() == expected + [PAD] * (5 - len(expected))
    assert train.counterfactual_ids[n].tolist() == [PAD] * 5  # no counterfactual: padding
    assert train.base_pos.tolist()[1] == 3 and train.source_pos.tolist()[3] == 2  # the shared fields
    val = data.splits["val"]  # a split without any counterfactual: (n, 0) ids
    assert val.counterfactual_ids.shape == (1, 0) and val.has_counterfactual.tolist() == [False]
    assert data.natural_targets == n and data.n_pairs == n + 2
    assert data.describe() == (
        f"all {n + 2} rows used; {n} of {n + 2} pairs have a natural target (a counterfactual prompt)"
    )
    assert data.worth_saying()
    every = text_pairs([*rows[: n - 1], {**rows[n - 1], "split": "val"}], words)
    assert every.natural_targets == every.n_pairs == n and every.describe() == f"all {n} rows used"
    without = text_pairs(EXAMPLE, words)
    assert without.natural_targets == 0 and not without.worth_saying()


def test_bad_counterfactual_fields_are_row_problems(tmp_path, words):
    good = {"base": "two plus one is", "source": "one plus one is", "target": "three"}
    bad = [
        ({"counterfactual": "two plus two", "counterfactual_marker": "banana"},
         "marker 'banana' not in the counterfactual"),
        ({"counterfactual": "two plus two", "marker": "plus", "counterfactual_marker": "two"},
         "marker (for every prompt) conflicts with counterfactual_marker"),
        ({"counterfactual": "two plus two", "position": 1, "counterfactual_position": 0},
         "position (for every prompt) conflicts with counterfactual_position"),
        ({"counterfactual": "two plus two", "marker": "one"}, "marker 'one' not in the counterfactual"),
        ({"counterfactual_position": 0}, "counterfactual_position without a counterfactual prompt"),
        ({"counterfactual_marker": "two"}, "counterfactual_marker without a counterfactual prompt"),
        ({"counterfactual": "two plus", "counterfactual_position": 9},
         "counterfactual position 9 out of range for a 3-token counterfactual"),
        ({"counterfactual": "two", "counterfactual_position": 0, "counterfactual_marker": "two"},
         "both counterfactual_position and counterfactual_marker given"),
        ({"counterfactual": 3}, "counterfactual is not text (int)"),
        ({"counterfactual": "the cat sat on the mat the cat sat on the mat"},
         "counterfactual is 13 tokens, more than 12"),
    ]  # fmt: skip
    rows = [*({**good, **fields} for fields, _ in bad), *varied({**good, "counterfactual": "two plus"}, 12)]
    for path in (write_jsonl(tmp_path / "p.jsonl", rows), write_csv(tmp_path / "p.csv", rows)):
        shift = path.suffix == ".csv"  # the header is line 1
        data = read_pairs(path, words, max_length=12)
        reasons = [reason for _, reason in bad]
        if shift:  # a CSV cell is text: 3 is "3", a counterfactual of one unknown word
            reasons.remove("counterfactual is not text (int)")
        assert [p.reason for p in data.problems] == reasons, path
        assert data.natural_targets == data.n_pairs == 12 + shift
    rows = [{**good, "counterfactual": ""}, {**good, "target": "four", "counterfactual": None}]
    data = text_pairs(rows, words, fractions=(0.5, 0.5, 0))  # an empty cell: no counterfactual
    assert data.natural_targets == 0 and not data.problems


def test_a_counterfactual_is_part_of_a_pair_only_where_given(words):
    row = {"base": "two plus one is", "source": "one plus one is", "target": "three"}
    rows = [
        row,
        {**row, "counterfactual": "two plus two is"},  # 2: another pair (a natural target)
        {**row, "counterfactual": "two plus two is", "counterfactual_position": -1},  # 3: as 2
        {**row, "counterfactual": "two plus two is", "counterfactual_position": 0},  # 4: another pair
        {**row, "counterfactual": "one plus two is"},  # 5: another pair
        {**row, "position": -1},  # 6: as 1
        {**row, "target": "four"},  # 7
    ]
    data = text_pairs(rows, words)
    assert data.duplicates == 2
    assert sorted(line for pairs in data.splits.values() for line in pairs.lines.tolist()) == [1, 2, 4, 5, 7]
    assert data.natural_targets == 3


def test_the_module_docstring_counterfactual_example():
    from alignsearch.text.toy import build_tokenizer

    tok = build_tokenizer()
    row = {
        "base": "apple pear . how many ?",
        "source": "cup box egg . how many ?",
        "target": " three",
        "counterfactual": "apple pear egg . how many ?",
    }
    data = text_pairs([{**row, "split": "train"}, {**row, "target": " two", "split": "val"}], tok)
    train = data.splits["train"]
    expected = tok("apple pear egg . how many ?")["input_ids"]
    assert train.counterfactual_ids.tolist() == [expected]
    assert train.counterfactual_pos.tolist() == [len(expected) - 1]  # "?"
