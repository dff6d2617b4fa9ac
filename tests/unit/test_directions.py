"""parse_directions: the forms ``alignment.directions`` accepts, and its errors."""

from __future__ import annotations

import pytest

from alignsearch.errors import ConfigError
from alignsearch.search.planning import parse_directions

KEY = "alignment.directions"
EVERY_TWO = [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_null_means_every_ordered_pair() -> None:
    assert parse_directions(None, KEY, 2) == EVERY_TWO
    assert parse_directions(None, KEY, 1) == [(0, 0)]
    assert len(parse_directions(None, KEY, 3)) == 9


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([[0, 1], [1, 1]], [(0, 1), (1, 1)]),  # pairs
        (["0>1", "1>0"], [(0, 1), (1, 0)]),  # source>target strings
        (((1, 0),), [(1, 0)]),  # tuples
        ([["1", "0"]], [(1, 0)]),  # numbers as strings
        ([[1, 1], "0>0"], [(1, 1), (0, 0)]),  # both forms, in the order given
        ([], []),
    ],
)
def test_accepted_forms(value, expected) -> None:
    assert parse_directions(value, KEY, 2) == expected


ALLOWED = "expected a list of [source, target] pairs of models 0..1, e.g. [[0,0],[0,1],[1,0],[1,1]]"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("0>1", "0>1"),  # not a list
        (7, "7"),
        ([[0, 2]], "[0,2]"),  # no model 2
        (["1>2"], "1>2"),
        ([[-1, 0]], "[-1,0]"),
        ([[0, 1, 1]], "[0,1,1]"),  # not a pair
        ([[0]], "[0]"),
        (["a>b"], "a>b"),  # not numbers
        ([5], "5"),  # not a pair at all
    ],
)
def test_errors_name_the_key_the_item_and_the_allowed_pairs(value, shown) -> None:
    with pytest.raises(ConfigError) as error:
        parse_directions(value, KEY, 2)
    assert str(error.value) == f"{KEY}={shown} is not allowed: {ALLOWED}"
