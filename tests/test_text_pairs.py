"""Counterfactual text pairs: reading JSONL/CSV files and Python rows, tokenising with the model's tokenizer,
positions (last, index, marker), row problems and splits (alignsearch.text.pairs)."""

from __future__ import annotations

import csv
import json
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


def assert_same(a: PairsData, b: PairsData, line_shift: int = 0) -> None:
    """The same pairs in every split; ``b``'s line numbers are ``a``'s plus ``line_shift``."""
    assert a.splits.keys() == b.splits.keys()
    for name, x in a.splits.items():
        y = b.splits[name]
        for field in ("ids", "task_mask", "base_pos", "source_ids", "source_pos"):
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
    ({"position": 1, "source_position": "last"}, 1, 3),  # a side's own field wins over the shared one
    ({"marker": "plus", "base_position": -1}, 4, 2),
    ({"position": 2.0, "source_position": float("nan")}, 2, 2),  # pandas: ints with gaps, NaN not given
]


@pytest.mark.parametrize(("fields", "base_pos", "source_pos"), POSITION_ROWS)
def test_positions(words, fields, base_pos, source_pos):
    row = {"base": "two plus one is", "source": "one plus one", "target": "three", **fields}
    data = text_pairs([{**row, "split": "train"}, {**row, "split": "val"}], words)
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
    rows = [good, *bad, *[good] * 9, {**good, "split": "val"}, {**good, "split": "test"}]
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
    data = text_pairs([{**row, "split": s} for s in names], words, fractions=(0.2, 0.2, 0.6))
    lines = {name: pairs.lines.tolist() for name, pairs in data.splits.items()}
    assert lines == {"train": [2, 4, 6], "val": [3, 5], "test": [1, 7]}


def test_a_split_column_without_val_rows_is_an_error(words):
    row = {"base": "two plus one is", "source": "one plus one is", "target": "three", "split": "train"}
    with pytest.raises(ConfigError, match=r"data.path=mine .* a pairs file with val rows \(none of 2"):
        text_pairs([row, row], words, source_name="mine")


def test_rows_without_a_split_where_others_have_one_are_problems(words):
    row = {"base": "two plus one is", "source": "one plus one is", "target": "three"}
    rows = [{**row, "split": "train"}, row, {**row, "split": "val"}]
    data = text_pairs(rows, words)
    assert data.problems == [RowProblem(2, "no split (other rows name theirs)")]


def test_the_seeded_split_is_deterministic_and_covers_every_usable_row_once(words):
    row = {"source": "one plus one is", "target": "three"}
    rows = [{**row, "base": "two plus one is" if i % 7 else ""} for i in range(44)]  # 7 empty bases
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
    data = text_pairs([row] * 3, words)
    assert [len(p) for p in data.splits.values()] == [1, 1, 1]
    for n in (1, 2):  # val and test take a row each: train is empty
        with pytest.raises(ConfigError, match=rf"a pairs file with train rows \(none of {n} usable rows by"):
            text_pairs([row] * n, words)


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
    data = text_pairs([row, ("two", "one", "three"), row, row], words)
    assert data.problems == [RowProblem(2, "a tuple, not a mapping of fields")]
