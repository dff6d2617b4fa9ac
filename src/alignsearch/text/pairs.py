"""Counterfactual text pairs for a causal language model, from a JSONL or CSV file or from Python rows.

Each row is one pair: a ``base`` prompt, a ``source`` prompt, the ``target`` continuation the intervened
model should produce after the base prompt, and where to intervene in each prompt::

    {"base": "the cat sat on the", "source": "a dog ran to the", "target": " mat", "marker": "sat"}

A CSV file has the same fields as columns, with a header line; an empty cell is a field not given.

**Positions.** Intervening at position ``p`` changes the state the model holds after reading token ``p``
of the prompt (counted in the prompt as the tokenizer encodes it, special tokens included). Each prompt's
position comes from its own field (``base_position``, ``base_marker``; ``source_position``,
``source_marker``) or from a shared one (``position``, ``marker``), never both: a row that gives a shared
field with a per-prompt one is skipped, as is a row giving both a position and a marker for one prompt
(which one was meant is not clear):

* ``position``: a token index (``-1`` is the last token, ``-2`` the one before) or ``"last"`` (the default);
* ``marker``: a piece of the prompt's text; the position is the last token that overlaps the first
  occurrence of that text (``"cat sat"`` in ``"the cat sat on"``: the token ``sat``).

**Repositioning.** The pairs keep each prompt's text and token spans (:class:`Prompt`), so that
:func:`reposition` can move every prompt of every pair to one position (``last``, ``-2``, a marker with an
offset: :class:`~alignsearch.settings.Position`) without tokenising again: the run's ``position`` and
the scan (:mod:`alignsearch.search.scan`) use it. A pair whose prompts do not all have the position is
left out of the repositioned pairs.

**Natural targets.** A row may give a ``counterfactual`` prompt: a text that *naturally* holds the
intervened state, the base with the source's value of the variable. The counterfactual-latent loss
(``alignment.cl_directions``) pulls the intervened vector towards the target model's own activation at
its position::

    {"base": "apple pear . how many ?", "source": "cup box egg . how many ?", "target": " three",
     "counterfactual": "apple pear egg . how many ?"}

(one line in a file; the base counts two objects, the source three; the counterfactual is a base-like
prompt that counts three, and the model's vector at its last token is what the intervened base should
hold). Its position comes from ``counterfactual_position`` / ``counterfactual_marker`` or from the
shared ``position`` / ``marker``, by the rules above (``"last"`` by default; never a shared and its own
field together). It is tokenised as the other prompts are. Rows without one have no natural target: they
count for the behavioural loss only (``PairsData.natural_targets`` counts the pairs that have one); when
no row of the data gives one, a run with a counterfactual-latent loss is refused before any work.

**Tokens.** Prompts are encoded by the model's own (fast) tokenizer with its special tokens (a Llama
tokenizer adds its BOS); the target is encoded on its own, without special tokens, and appended to the
base prompt. For byte-level BPE tokenizers (GPT-2 and most others) a target normally starts with the
space the text would have: ``" three"`` is the token ``Ġthree``, while ``"three"`` is another token (the
start of a word glued to the prompt). SentencePiece tokenizers may add the word's space themselves;
``tokenizer.tokenize(target)`` shows what a target becomes.

**Unknown text.** A target with text outside the tokenizer's vocabulary (text that becomes its unknown
token, as in a word-level or WordPiece tokenizer) is skipped: the target is what the model must predict,
and the unknown token stands for any unknown text, not the row's. A prompt may hold unknown text: the
model only reads it, and reads the unknown token as it reads any other. Byte-level BPE tokenizers
(GPT-2's among them) have no unknown text.

**Splits.** A ``split`` field (``train``, ``val`` or ``validation``, ``test``) places each row; without
one, a seeded shuffle divides the usable rows by ``fractions`` (the same seed and the same usable rows
give the same split). Duplicates are dropped first (below).

**Rows that cannot be used** (missing or empty texts, a marker not in its prompt, a position outside its
prompt, a shared position or marker with a per-prompt one, a counterfactual position or marker without a
counterfactual prompt, a target with unknown text, more than ``max_length`` tokens, a line that is not a
JSON object, an unknown split) are left out and reported as ``RowProblem(line, reason)``; when more than
half of the rows fail, nothing is returned and one ``ConfigError`` line names the first few.

**Duplicates.** A usable row that gives the same pair as an earlier one is dropped before the split (so a
pair cannot be in train and in test) and counted in ``PairsData.duplicates``. The same pair is what the
model sees: the same token ids of the base prompt, the target (and where it starts) and the source
prompt, and the same two positions, however the row writes them (``"position": -1`` or none; text that
tokenises alike), and, where the row gives one, the counterfactual prompt's ids and position (a row with
a counterfactual is not a duplicate of one without). The split column is no part of it: the first row's
split keeps the pair.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from alignsearch.errors import ConfigError, require_positive
from alignsearch.seeding import generator
from alignsearch.settings import Position

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SPLITS = ("train", "val", "test")
SPLIT_NAMES = {"train": "train", "val": "val", "validation": "val", "test": "test"}
SIDES = ("base", "source")
COUNTERFACTUAL = "counterfactual"
PROMPTS = (*SIDES, COUNTERFACTUAL)
"""Every prompt a row may have: the counterfactual one is optional."""
LAST = "last"
SUFFIXES = (".jsonl", ".csv")
DEFAULT_MAX_LENGTH = 256
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
FRACTION_TOLERANCE = 1e-6
SHOWN_PROBLEMS = 3  # problems quoted by an error or a summary; the rest are counted
KEY = "data.path"


@dataclass(frozen=True)
class Row:
    """One row of a pairs file: its 1-based line in the file and its fields, or why it has none.

    ``Row(3, {"base": "two plus one is", "source": "one plus one is", "target": " three"})``;
    ``Row(4, {}, "not valid JSON (Expecting value: column 1)")``.
    """

    line: int
    fields: Mapping[str, Any]
    problem: str | None = None


@dataclass(frozen=True)
class RowProblem:
    """A row left out: ``RowProblem(4, "empty target")`` reads ``line 4: empty target``."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class Prompt:
    """A prompt as it was read: its text and each token's character span in it (special tokens: ``(0, 0)``)."""

    text: str
    offsets: tuple[tuple[int, int], ...]


@dataclass
class TextPairs:
    """``n`` counterfactual pairs as tensors (one split).

    ``ids`` (n, L) long: the base prompt then the target tokens, right-padded with the pad id;
    ``task_mask`` (n, L) bool: True exactly at the target tokens (a pair counts for IIA when every one of
    them is the intervened model's argmax, teacher-forced); ``base_pos`` (n,): where the base is
    intervened on; ``source_ids`` (n, Ls) long: the source prompts, right-padded; ``source_pos`` (n,):
    the source position whose state is swapped in; ``lines`` (n,): each pair's line in the file;
    ``counterfactual_ids`` (n, Lc) long: the counterfactual prompts, right-padded (all padding in a row
    without one; ``Lc`` is 0 when no row has one); ``counterfactual_pos`` (n,): their positions (0 where
    there is none); ``has_counterfactual`` (n,) bool: which rows have one (a natural target);
    ``prompts`` (n,): each row's prompts (``base``, ``source``, and ``counterfactual`` where it has one)
    as :class:`Prompt` objects, what :func:`reposition` moves the positions in (None: built without them).

    Example (a word-level tokenizer that adds ``[BOS]``; ids: ``[PAD]`` 0, ``[BOS]`` 2, ``the`` 3, ``cat``
    4, ``sat`` 5, ``on`` 6, ``mat`` 8, ``dog`` 9, ``ran`` 10), rows on lines 1 and 2::

        {"base": "the cat sat on the", "source": "the dog ran", "target": "mat", "base_marker": "cat sat"}
        {"base": "the dog", "source": "the cat", "target": "sat on", "position": -2}

        base + target  [BOS] the cat sat on  the   mat     source  [BOS] the dog ran
                       [BOS] the dog sat on  [PAD] [PAD]           [BOS] the cat [PAD]
        ids            2     3   4   5   6   3     8       source_ids  2  3  9  10
                       2     3   9   5   6   0     0                   2  3  4  0
        task_mask      0     0   0   0   0   0     1       (True at the target tokens: mat; sat on)
                       0     0   0   1   1   0     0
        base_pos       3 (sat: the last token of "cat sat"), 1 (the: -2 of "[BOS] the dog")
        source_pos     3 ("last", the default),              1 (the: -2 of "[BOS] the cat")
        lines          1, 2
        counterfactual_ids  (2, 0): neither row gives one
        counterfactual_pos  0, 0;  has_counterfactual  False, False
    """

    ids: Tensor
    task_mask: Tensor
    base_pos: Tensor
    source_ids: Tensor
    source_pos: Tensor
    lines: Tensor
    counterfactual_ids: Tensor
    counterfactual_pos: Tensor
    has_counterfactual: Tensor
    prompts: tuple[dict[str, Prompt], ...] | None = None

    def __len__(self) -> int:
        return self.ids.shape[0]

    def rows(
        self, index: Tensor, base_pos: Tensor, source_pos: Tensor, counterfactual_pos: Tensor
    ) -> TextPairs:
        """Rows ``index`` of these pairs, intervened at the given positions (columns keep their width)."""
        return TextPairs(
            self.ids[index],
            self.task_mask[index],
            base_pos,
            self.source_ids[index],
            source_pos,
            self.lines[index],
            self.counterfactual_ids[index],
            counterfactual_pos,
            self.has_counterfactual[index],
            None if self.prompts is None else tuple(self.prompts[i] for i in index.tolist()),
        )


@dataclass
class PairsData:
    """The usable pairs by split (``train``, ``val``, ``test``), the rows left out, how many rows there
    were in all and how many of the usable ones were dropped as ``duplicates`` of an earlier row."""

    splits: dict[str, TextPairs]
    problems: list[RowProblem]
    n_rows: int
    duplicates: int = 0

    @property
    def n_pairs(self) -> int:
        """The usable pairs of every split."""
        return sum(len(p) for p in self.splits.values())

    @property
    def natural_targets(self) -> int:
        """The pairs (of every split) with a counterfactual prompt, i.e. with a natural target."""
        return sum(int(p.has_counterfactual.sum()) for p in self.splits.values())

    def describe(self) -> str:
        """A one-line summary of the rows left out, for a run's log, and how many pairs have a natural
        target when only some do (``...; 30 of 80 pairs have a natural target (a counterfactual prompt)``)."""
        line = describe(self.problems, self.n_rows, self.duplicates)
        if 0 < self.natural_targets < self.n_pairs:
            line += f"; {natural_share(self.natural_targets, self.n_pairs)}"
        return line

    def worth_saying(self) -> bool:
        """Whether :meth:`describe` has news for a run's log: rows left out, or natural targets for some
        pairs only."""
        return bool(self.problems or self.duplicates or 0 < self.natural_targets < self.n_pairs)


def natural_share(found: int, n: int) -> str:
    """How many of ``n`` pairs have a natural target, for a run's log.

    >>> natural_share(30, 80)
    '30 of 80 pairs have a natural target (a counterfactual prompt)'
    """
    verb = "has" if found == 1 else "have"
    return f"{found} of {n} pairs {verb} a natural target (a counterfactual prompt)"


@dataclass(frozen=True)
class _Where:
    """A prompt position: a token index (``-1``: the last) or the text of a marker."""

    index: int = -1
    marker: str | None = None


@dataclass(frozen=True)
class _Fields:
    line: int
    texts: dict[str, str]  # base, source, target, and counterfactual where the row gives one
    where: dict[str, _Where]  # per prompt
    split: str | None


@dataclass(frozen=True)
class _Encoded:
    line: int
    ids: list[int]  # base prompt + target
    n_prompt: int
    base_pos: int
    source_ids: list[int]
    source_pos: int
    split: str | None
    counterfactual_ids: list[int] | None = None
    counterfactual_pos: int = 0
    prompts: dict[str, Prompt] | None = None

    def pair(self) -> tuple[Any, ...]:
        """What the model sees of this row (its line and split aside): equal for duplicates. The
        counterfactual prompt is part of it where the row gives one."""
        seen = (tuple(self.ids), self.n_prompt, self.base_pos, tuple(self.source_ids), self.source_pos)
        if self.counterfactual_ids is None:
            return seen
        return (*seen, tuple(self.counterfactual_ids), self.counterfactual_pos)


class _Skip(Exception):
    """A row that cannot be used, and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_rows(path: str | Path) -> list[Row]:
    """The rows of a ``.jsonl`` (one JSON object a line; blank lines skipped) or ``.csv`` file (a header
    line naming the fields, which is line 1). A line that is no JSON object is a row with a problem."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ConfigError(KEY, path, "a .jsonl or .csv file of counterfactual pairs")
    if not path.is_file():
        raise ConfigError(KEY, path, "an existing .jsonl or .csv file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(KEY, path, f"a UTF-8 text file ({err.reason} at byte {err.start})") from None
    return _jsonl_rows(text) if path.suffix.lower() == ".jsonl" else _csv_rows(text, path)


def _jsonl_rows(text: str) -> list[Row]:
    rows = []
    for line, content in enumerate(text.split("\n"), 1):  # not splitlines: JSON text may hold U+2028
        if not content.strip():
            continue
        try:
            value = json.loads(content)
        except json.JSONDecodeError as err:
            rows.append(Row(line, {}, f"not valid JSON ({err.msg} at column {err.colno})"))
            continue
        if isinstance(value, dict):
            rows.append(Row(line, value))
        else:
            rows.append(Row(line, {}, f"a JSON {type(value).__name__}, not an object"))
    return rows


def _csv_rows(text: str, path: Path) -> list[Row]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return []
        if len(set(header)) != len(header):
            raise ConfigError(KEY, path, f"a CSV header with distinct column names ({','.join(header)})")
        rows, end = [], reader.line_num
        for record in reader:
            start, end = end + 1, reader.line_num
            if not record:
                continue
            if len(record) != len(header):
                rows.append(Row(start, {}, f"{len(record)} fields where the header has {len(header)}"))
            else:
                rows.append(Row(start, dict(zip(header, record, strict=True))))
    except csv.Error as err:
        raise ConfigError(KEY, path, f"a readable CSV file ({err} at line {reader.line_num})") from None
    return rows


def read_pairs(path: str | Path, tokenizer: PreTrainedTokenizerBase, **kw: Any) -> PairsData:
    """``text_pairs(read_rows(path), tokenizer, **kw)``, with errors naming the file."""
    return text_pairs(read_rows(path), tokenizer, source_name=str(path), **kw)


def text_pairs(
    rows: Iterable[Mapping[str, Any] | Row],
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    seed: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    source_name: str = "rows",
) -> PairsData:
    """Tokenised counterfactual pairs by split, from rows of fields (see the module docstring).

    ``rows``: ``Row`` objects (``read_rows``) or plain mappings (a list of dicts, a generator, a
    ``datasets.Dataset``), whose line numbers are their 1-based places in ``rows``. ``tokenizer``: the
    model's fast ``transformers`` tokenizer (pads with its pad token, else its eos token). A prompt, or a
    base prompt with its target, longer than ``max_length`` tokens is a row problem; a row repeating an
    earlier row's pair is dropped and counted (``duplicates``). Raises a ``ConfigError`` about
    ``source_name`` when more than half of the rows fail or train or val is empty.
    """
    require_positive("data.max_length", max_length)
    shares = _check_fractions(fractions)
    pad = _pad_id(tokenizer)
    problems: list[RowProblem] = []
    parsed: list[_Fields] = []
    n_rows = 0
    for n_rows, item in enumerate(rows, 1):
        row = item if isinstance(item, Row) else Row(n_rows, item)
        try:
            parsed.append(_parse(row))
        except _Skip as skip:
            problems.append(RowProblem(row.line, skip.reason))
    if any(p.split is not None for p in parsed):
        for p in parsed:
            if p.split is None:
                problems.append(RowProblem(p.line, "no split (other rows name theirs)"))
        parsed = [p for p in parsed if p.split is not None]
    encoded = _encode(parsed, tokenizer, max_length, problems)
    problems.sort(key=lambda p: p.line)
    _check_usable(n_rows, problems, encoded, source_name)
    distinct = _first_of_each_pair(encoded)
    duplicates = len(encoded) - len(distinct)
    groups = _split(distinct, shares, seed)
    for name in ("train", "val"):
        if not groups[name]:
            how = "by the split column" if distinct[0].split is not None else f"by fractions {list(shares)}"
            dropped = f", after dropping {_rows(duplicates)} repeating earlier ones" if duplicates else ""
            raise ConfigError(
                KEY,
                source_name,
                f"a pairs file with {name} rows (none of {len(distinct)} usable rows {how}{dropped})",
            )
    return PairsData({name: _stack(groups[name], pad) for name in SPLITS}, problems, n_rows, duplicates)


def describe(problems: Sequence[RowProblem], n_rows: int | None = None, duplicates: int = 0) -> str:
    """A short summary of the rows left out (skipped, or dropped as ``duplicates``), for a run's log.

    >>> describe([RowProblem(4, "empty target"), RowProblem(9, "marker 'x' not in the base")], 200)
    "2 of 200 rows skipped: line 4: empty target; line 9: marker 'x' not in the base"
    >>> describe([RowProblem(4, "empty target")], 200, duplicates=12)
    '12 duplicate rows dropped; 1 of 200 rows skipped: line 4: empty target'
    >>> describe([], 200, duplicates=1)
    '199 of 200 rows used, 1 duplicate row dropped'
    >>> describe([], 200)
    'all 200 rows used'
    """
    dropped = f"{_rows(duplicates, 'duplicate row')} dropped" if duplicates else ""
    if not problems:
        if not duplicates:
            return "no rows skipped" if n_rows is None else f"all {n_rows} rows used"
        return dropped if n_rows is None else f"{n_rows - duplicates} of {n_rows} rows used, {dropped}"
    count = _rows(len(problems)) if n_rows is None else f"{len(problems)} of {n_rows} rows"
    skipped = f"{count} skipped: {_first(problems)}"
    return f"{dropped}; {skipped}" if duplicates else skipped


def _rows(n: int, noun: str = "row") -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _first(problems: Sequence[RowProblem]) -> str:
    shown = "; ".join(str(p) for p in problems[:SHOWN_PROBLEMS])
    rest = len(problems) - SHOWN_PROBLEMS
    return f"{shown}; and {rest} more" if rest > 0 else shown


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    allowed = "three fractions (train, val, test) >= 0 summing to 1, with train and val above 0"
    try:
        shares = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise ConfigError("data.fractions", fractions, allowed) from None
    if (
        len(shares) != len(SPLITS)
        or min(shares) < 0
        or shares[0] == 0
        or shares[1] == 0
        or abs(sum(shares) - 1) > FRACTION_TOLERANCE
    ):
        raise ConfigError("data.fractions", fractions, allowed)
    return shares  # type: ignore[return-value]


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    name = type(tokenizer).__name__
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("tokenizer", name, "a fast transformers tokenizer (markers need its offsets)")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ConfigError("tokenizer", name, "a tokenizer with a pad or an eos token (to pad with)")
    return int(pad)


def _parse(row: Row) -> _Fields:
    """A row's texts, positions and split, or ``_Skip`` with the first reason it cannot be used."""
    if row.problem is not None:
        raise _Skip(row.problem)
    fields = row.fields
    if not isinstance(fields, Mapping):
        raise _Skip(f"a {type(fields).__name__}, not a mapping of fields")
    texts = {name: _text(fields, name) for name in ("base", "source", "target")}
    prompts = list(SIDES)
    if _given(fields, COUNTERFACTUAL) is not None:
        texts[COUNTERFACTUAL] = _text(fields, COUNTERFACTUAL)
        prompts.append(COUNTERFACTUAL)
    else:
        names = (f"{COUNTERFACTUAL}_position", f"{COUNTERFACTUAL}_marker")
        own = [n for n in names if _given(fields, n) is not None]
        if own:
            raise _Skip(f"{_and(own)} without a {COUNTERFACTUAL} prompt")
    _check_shared(fields)
    where = {side: _where(fields, side) for side in prompts}
    split = _given(fields, "split")
    if split is not None:
        name = SPLIT_NAMES.get(str(split).strip().lower())
        if name is None:
            raise _Skip(f"split {split!r} is not train, val, validation or test")
        split = name
    return _Fields(row.line, texts, where, split)


def _given(fields: Mapping[str, Any], name: str) -> Any:
    """A field's value, or None when it is absent, null, an empty string (a CSV cell) or NaN."""
    value = fields.get(name)
    if value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if value is None:
        raise _Skip(f"no {name}")
    if not isinstance(value, str):
        raise _Skip(f"{name} is not text ({type(value).__name__})")
    if not value:
        raise _Skip(f"empty {name}")
    return value


def _check_shared(fields: Mapping[str, Any]) -> None:
    """``_Skip`` when a shared ``position`` or ``marker`` comes with a per-prompt field: the shared one is
    for every prompt, the other for one of them, and which should place that prompt is not clear."""
    shared = [name for name in ("position", "marker") if _given(fields, name) is not None]
    own = [
        f"{side}_{kind}"
        for side in PROMPTS
        for kind in ("position", "marker")
        if _given(fields, f"{side}_{kind}") is not None
    ]
    if shared and own:
        verb = "conflicts" if len(shared) == 1 else "conflict"
        raise _Skip(f"{_and(shared)} (for every prompt) {verb} with {_and(own)}")


def _where(fields: Mapping[str, Any], side: str) -> _Where:
    """``side``'s position: its own fields if it has one, else the shared ``position`` / ``marker``
    (``_check_shared`` has made sure a row gives only one kind)."""
    own = (f"{side}_position", f"{side}_marker")
    names = own if any(_given(fields, n) is not None for n in own) else ("position", "marker")
    position, marker = (_given(fields, n) for n in names)
    if position is not None and marker is not None:
        raise _Skip(f"both {names[0]} and {names[1]} given")
    if marker is not None:
        if not isinstance(marker, str):
            raise _Skip(f"{names[1]} is not text ({type(marker).__name__})")
        return _Where(marker=marker)
    return _Where() if position is None else _Where(_index(position, names[0]))


def _index(value: Any, name: str) -> int:
    """A token index from an int, an integral float or a string (``"-1"``, ``"last"``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text == LAST:
            return -1
        try:
            return int(text)
        except ValueError:
            pass
    raise _Skip(f"{name} {value!r} is not a token index or {LAST!r}")


def _encode(
    parsed: list[_Fields], tokenizer: PreTrainedTokenizerBase, max_length: int, problems: list[RowProblem]
) -> list[_Encoded]:
    """Token ids and positions of every parsed row; rows that fail go to ``problems``."""
    if not parsed:
        return []
    prompts = {
        side: tokenizer([p.texts[side] for p in parsed], return_offsets_mapping=True) for side in SIDES
    }
    with_counterfactual = [i for i, p in enumerate(parsed) if COUNTERFACTUAL in p.texts]
    counterfactuals = {}  # row -> (ids, offsets) of its counterfactual prompt
    if with_counterfactual:
        cf = tokenizer(
            [parsed[i].texts[COUNTERFACTUAL] for i in with_counterfactual], return_offsets_mapping=True
        )
        for k, i in enumerate(with_counterfactual):
            counterfactuals[i] = (list(cf["input_ids"][k]), cf["offset_mapping"][k])
    targets = tokenizer(
        [p.texts["target"] for p in parsed], add_special_tokens=False, return_offsets_mapping=True
    )
    encoded = []
    for i, p in enumerate(parsed):
        try:
            ids = {side: list(prompts[side]["input_ids"][i]) for side in SIDES}
            pos = {
                side: _position(p.where[side], p.texts[side], prompts[side]["offset_mapping"][i], side)
                for side in SIDES
            }
            target = list(targets["input_ids"][i])
            if not target:
                raise _Skip("target has no tokens")
            _check_known(tokenizer, p.texts["target"], target, targets["offset_mapping"][i])
            if len(ids["base"]) + len(target) > max_length:
                raise _Skip(
                    f"base + target are {len(ids['base']) + len(target)} tokens, more than {max_length}"
                )
            if len(ids["source"]) > max_length:
                raise _Skip(f"source is {len(ids['source'])} tokens, more than {max_length}")
            read = {side: Prompt(p.texts[side], _spans(prompts[side]["offset_mapping"][i])) for side in SIDES}
            cf_ids, cf_pos = None, 0
            if i in counterfactuals:
                cf_ids, offsets = counterfactuals[i]
                read[COUNTERFACTUAL] = Prompt(p.texts[COUNTERFACTUAL], _spans(offsets))
                cf_pos = _position(p.where[COUNTERFACTUAL], p.texts[COUNTERFACTUAL], offsets, COUNTERFACTUAL)
                if len(cf_ids) > max_length:
                    raise _Skip(f"counterfactual is {len(cf_ids)} tokens, more than {max_length}")
        except _Skip as skip:
            problems.append(RowProblem(p.line, skip.reason))
            continue
        encoded.append(
            _Encoded(
                p.line,
                ids["base"] + target,
                len(ids["base"]),
                pos["base"],
                ids["source"],
                pos["source"],
                p.split,
                cf_ids,
                cf_pos,
                read,
            )
        )
    return encoded


def _spans(offsets: Sequence[Sequence[int]]) -> tuple[tuple[int, int], ...]:
    return tuple((int(a), int(b)) for a, b in offsets)


def _check_known(
    tokenizer: PreTrainedTokenizerBase, target: str, ids: list[int], offsets: Sequence[tuple[int, int]]
) -> None:
    """``_Skip`` when some of the target's text became the tokenizer's unknown token. The unknown token
    written out in the target (GPT-2's ``<|endoftext|>`` is its unknown, bos and eos token) is no unknown
    text; a tokenizer without an unknown token knows every text."""
    unk, unk_text = tokenizer.unk_token_id, tokenizer.unk_token
    if unk is None:
        return
    spans = [(a, b) for t, (a, b) in zip(ids, offsets, strict=True) if t == unk and target[a:b] != unk_text]
    if not spans:
        return
    parts = list(dict.fromkeys(repr(target[a:b]) for a, b in spans if b > a)) or [repr(target)]
    raise _Skip(f"target {target!r} has {_and(parts)}, unknown to the tokenizer (it would be {unk_text})")


def _position(where: _Where, text: str, offsets: Sequence[tuple[int, int]], side: str) -> int:
    """The token index of ``where`` in a prompt of ``len(offsets)`` tokens with these character spans."""
    n = len(offsets)
    if where.marker is None:
        if not -n <= where.index < n:
            raise _Skip(f"{side} position {where.index} out of range for a {n}-token {side}")
        return where.index % n
    start = text.find(where.marker)
    if start < 0:
        raise _Skip(f"marker {where.marker!r} not in the {side}")
    end = start + len(where.marker)
    covering = [t for t, (a, b) in enumerate(offsets) if a < end and b > start]
    if not covering:
        raise _Skip(f"marker {where.marker!r} covers no token of the {side}")
    return covering[-1]


def _check_usable(n_rows: int, problems: list[RowProblem], encoded: list[_Encoded], source: str) -> None:
    if n_rows == 0:
        raise ConfigError(KEY, source, "a pairs file with at least one row")
    if 2 * len(problems) > n_rows or not encoded:
        raise ConfigError(
            KEY,
            source,
            f"a pairs file whose rows are mostly usable: {len(problems)} of {n_rows} rows failed "
            f"({_first(problems)})",
        )


def _first_of_each_pair(encoded: list[_Encoded]) -> list[_Encoded]:
    """``encoded`` without the rows that repeat an earlier row's pair (``_Encoded.pair``)."""
    seen: set[tuple[Any, ...]] = set()
    kept = []
    for e in encoded:
        if e.pair() not in seen:
            seen.add(e.pair())
            kept.append(e)
    return kept


def _split(
    encoded: list[_Encoded], shares: tuple[float, float, float], seed: int
) -> dict[str, list[_Encoded]]:
    """Rows by split: their ``split`` field, or a seeded shuffle cut by ``shares`` (val and test get at
    least one row each when their share is above 0); each split keeps file order."""
    if encoded[0].split is not None:
        return {name: [e for e in encoded if e.split == name] for name in SPLITS}
    n = len(encoded)
    n_val, n_test = (max(1, round(share * n)) if share > 0 else 0 for share in shares[1:])
    n_test = min(n_test, n)
    n_train = max(0, n - n_test - n_val)
    order = torch.randperm(n, generator=generator(seed, "text-pairs-split")).tolist()
    cuts = {"train": order[:n_train], "val": order[n_train : n - n_test], "test": order[n - n_test :]}
    return {name: [encoded[i] for i in sorted(cuts[name])] for name in SPLITS}


def _stack(items: list[_Encoded], pad: int) -> TextPairs:
    """Right-padded tensors of ``items``."""

    def padded(seqs: list[list[int]]) -> Tensor:
        out = torch.full((len(seqs), max((len(s) for s in seqs), default=0)), pad, dtype=torch.long)
        for row, seq in enumerate(seqs):
            out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        return out

    ids = padded([e.ids for e in items])
    task_mask = torch.zeros(ids.shape, dtype=torch.bool)
    for row, e in enumerate(items):
        task_mask[row, e.n_prompt : len(e.ids)] = True
    prompts = tuple(e.prompts for e in items if e.prompts is not None)
    return TextPairs(
        ids,
        task_mask,
        torch.tensor([e.base_pos for e in items], dtype=torch.long),
        padded([e.source_ids for e in items]),
        torch.tensor([e.source_pos for e in items], dtype=torch.long),
        torch.tensor([e.line for e in items], dtype=torch.long),
        padded([e.counterfactual_ids or [] for e in items]),
        torch.tensor([e.counterfactual_pos for e in items], dtype=torch.long),
        torch.tensor([e.counterfactual_ids is not None for e in items], dtype=torch.bool),
        prompts if len(prompts) == len(items) else None,
    )


def reposition(data: PairsData, position: Position | None) -> tuple[PairsData, dict[str, Tensor]]:
    """``data`` with every prompt of every pair (base, source, and the counterfactual where a row has one)
    intervened on at ``position``, each split keeping the pairs whose prompts all have it, and the indices
    of the kept rows per split. None: the pairs as they are (every row kept). No tokenising: the positions
    come from the prompts' token spans (:class:`Prompt`); columns keep their width.

    A position by token index is counted in each prompt as :func:`text_pairs` counts it (``-1``, ``last``:
    its last token); a marker is the last token overlapping the text's first occurrence, moved by the
    position's ``offset`` and kept inside the prompt.
    """
    if position is None:
        return data, {split: torch.arange(len(p)) for split, p in data.splits.items()}
    splits, kept = {}, {}
    for split, pairs in data.splits.items():
        if pairs.prompts is None:
            raise ConfigError(
                "position", position.spec, "text pairs that keep their prompts (api.text_pairs)"
            )
        index: list[int] = []
        places: dict[str, list[int]] = {side: [] for side in PROMPTS}
        for row, prompts in enumerate(pairs.prompts):
            try:
                found = {side: _place(position, prompts[side], side) for side in prompts}
            except _Skip:
                continue
            index.append(row)
            for side in PROMPTS:
                places[side].append(found.get(side, 0))
        rows = torch.tensor(index, dtype=torch.long)
        positions = [torch.tensor(places[side], dtype=torch.long) for side in PROMPTS]
        splits[split], kept[split] = pairs.rows(rows, *positions), rows
    return dataclasses.replace(data, splits=splits), kept


def _place(position: Position, prompt: Prompt, side: str) -> int:
    """The token index of ``position`` in ``prompt``, or ``_Skip``."""
    if position.marker is not None:
        where = _Where(marker=position.marker)
    else:
        assert position.index is not None  # a position is a marker or a token index
        where = _Where(position.index)
    place = _position(where, prompt.text, prompt.offsets, side) + position.offset
    if not 0 <= place < len(prompt.offsets):
        raise _Skip(f"{side} position {position.spec} out of range for a {len(prompt.offsets)}-token {side}")
    return place
