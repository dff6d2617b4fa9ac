"""Wrong arguments to the Python API: each one is one ConfigError line naming the argument, its value and
what is allowed, raised before any work (no traceback of another kind, no minute of pair drawing)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from alignsearch import api
from alignsearch.errors import ConfigError
from tests.helpers import QUICK_API, TINY_ALIGNMENT, TINY_SUFFIX, TINY_TRAINING, refused

QUICK = QUICK_API
TINY_NAME = f"multiobject/gru/seed0-d_model32{TINY_SUFFIX}"
STRICT = [o for o in TINY_ALIGNMENT if not o.startswith("min_task_accuracy=")]
STRICT_QUICK = {k: v for k, v in QUICK.items() if k != "min_task_accuracy"}
"""TINY_ALIGNMENT and QUICK without accepting the tiny GRU's accuracy: the default ``min_task_accuracy``
holds."""


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "a_file"
    path.write_text("not a folder")
    return path


def one_line(call) -> str:
    """The message of the ConfigError ``call()`` raises: one line, and no other exception."""
    try:
        call()
    except ConfigError as e:
        message = str(e)
        assert "\n" not in message and message, message
        return message
    except Exception as e:  # noqa: BLE001 - the test is that nothing else escapes
        pytest.fail(f"{type(e).__name__} instead of a ConfigError: {e}")
    pytest.fail("no error")


def _align(gru, **kwargs):
    return lambda: api.align(gru, **{"overrides": TINY_ALIGNMENT, **QUICK, **kwargs})


CASES = {
    "overrides a string": (
        lambda gru, das, f: _align(gru, overrides="alignment.lr=0.1"),
        "overrides='alignment.lr=0.1' is a str: expected a list of command-line overrides, each key=value "
        "(e.g. overrides=['alignment.lr=0.1'])",
    ),
    "an override without =": (
        lambda gru, das, f: _align(gru, overrides=["nonsense"]),
        "overrides='nonsense' is not allowed: expected a list of command-line overrides, each key=value",
    ),
    "an override that is no string": (
        lambda gru, das, f: _align(gru, overrides=[3]),
        "overrides=3 is an int: expected a list of command-line overrides",
    ),
    "model overrides a string": (
        lambda gru, das, f: lambda: api.model(overrides="x"),
        "overrides='x' is a str: expected a list of command-line overrides",
    ),
    "own_model overrides a string": (
        lambda gru, das, f: lambda: api.own_model(gru.model, overrides="task.max_count=9"),
        "overrides='task.max_count=9' is a str: expected a list",
    ),
    "config overrides a string": (
        lambda gru, das, f: lambda: api.config("run_alignment", "alignment=mas"),
        "overrides='alignment=mas' is a str: expected a list",
    ),
    "scan overrides a string": (
        lambda gru, das, f: lambda: api.scan(gru, overrides="alignment.lr=0.1", progress=False),
        "overrides='alignment.lr=0.1' is a str: expected a list",
    ),
    "a zoo model below min_task_accuracy": (
        lambda gru, das, f: lambda: api.align(gru, overrides=STRICT, **STRICT_QUICK),
        f"min_task_accuracy=0.95 is not allowed: expected a threshold that {TINY_NAME} reaches: its "
        "validation trial accuracy is ",
    ),
    "min_task_accuracy above 1": (
        lambda gru, das, f: _align(gru, min_task_accuracy=2),
        "min_task_accuracy=2 is not allowed: expected a number in [0, 1]",
    ),
    "min_task_accuracy overridden against the argument": (
        lambda gru, das, f: _align(gru, min_task_accuracy=0.5),
        "overrides='min_task_accuracy=0' is not allowed: expected no override of what the argument "
        "min_task_accuracy sets (min_task_accuracy=0.5;",
    ),
    "out_dir a number": (
        lambda gru, das, f: _align(gru, out_dir=3),
        "out_dir=3 is an int: expected a folder (a str or Path), or None for a temporary one",
    ),
    "out_dir a file": (
        lambda gru, das, f: _align(gru, out_dir=f),
        "out_dir=PosixPath(",
    ),
    "out_dir below a file": (
        lambda gru, das, f: _align(gru, out_dir=str(f / "run")),
        "is not allowed: expected a path this user can write (",
    ),
    "pairs of a split the task has not": (
        lambda gru, das, f: lambda: api.pairs(gru, n=10, split="nope"),
        "split='nope' is not allowed: expected one of the splits of task multiobject: train, heldout",
    ),
    "pairs with an unknown option": (
        lambda gru, das, f: lambda: api.pairs(gru, n=10, bogus=1),
        "bogus=1 is not allowed: expected a known setting (one of keep_extrapolation, position,",
    ),
    "pairs with a misspelt option": (
        lambda gru, das, f: lambda: api.pairs(gru, n=10, stepwize=True),
        "stepwize=True is not allowed: expected a known setting (did you mean stepwise?)",
    ),
    "pairs at a position no sequence has": (
        lambda gru, das, f: lambda: api.pairs(gru, n=10, position=999),
        "position='999' is not allowed: expected a position where the train sequences can be intervened on",
    ),
    "pairs at a position that is no position": (
        lambda gru, das, f: lambda: api.pairs(gru, n=10, position=1.5),
        "position=1.5 is a float: expected ",
    ),
    "text pairs with an unknown option": (
        lambda gru, das, f: lambda: api.text_pairs([], None, bogus=1),
        "bogus=1 is not allowed: expected a known setting (one of fractions, max_length, seed, source_name)",
    ),
    "load_alignment of None": (
        lambda gru, das, f: lambda: api.load_alignment(None),
        "path=None is not allowed: expected the path of an alignment file",
    ),
    "save below a file": (
        lambda gru, das, f: lambda: das.save(f / "das.pt"),
        "is not allowed: expected a path this user can write (",
    ),
    "save to a folder": (
        lambda gru, das, f: lambda: das.save(f.parent),
        "is not allowed: expected the path of a file to write (a str or Path): it is a folder",
    ),
    "save to None": (
        lambda gru, das, f: lambda: das.save(None),
        "path=None is not allowed: expected the path of a file to write",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_wrong_argument_is_one_configerror_line(case, gru, das, a_file) -> None:
    make, fragment = CASES[case]
    message = one_line(make(gru, das, a_file))
    assert fragment in message, message


def test_min_task_accuracy_holds_zoo_models_only(gru) -> None:
    """The tiny GRU (far below 0.95) is aligned once accepted, by the argument or an override (the same
    key as the command line's); the same weights brought from Python are not held to it (its accuracy is
    measured, and the README's drop-in example aligns an untrained model on purpose)."""
    assert api.align(gru, overrides=[*STRICT, "min_task_accuracy=0"], **STRICT_QUICK).steps == 20
    assert api.align(gru, overrides=STRICT, min_task_accuracy=0.0, **STRICT_QUICK).steps == 20
    assert api.align(gru.model, task="multiobject", overrides=STRICT, **STRICT_QUICK).steps == 20


def test_what_a_refused_call_says_of_paths(gru, das, a_file) -> None:
    assert one_line(_align(gru, out_dir=a_file)).endswith("expected a folder (it is a file)")
    below = one_line(_align(gru, out_dir=a_file / "run"))
    assert below.endswith(f"expected a path this user can write ({a_file} is a file)"), below
    assert not (a_file.parent / "das.pt").exists()
    assert one_line(lambda: das.save(a_file / "das.pt")).endswith(f"({a_file} is a file)")


@pytest.mark.parametrize("position", [0, 10**6])
def test_a_position_no_sequence_has_is_refused_before_any_pair_is_drawn(gru, position, monkeypatch) -> None:
    """At the default sizes the pairs' draws took a minute before they gave up; now the plan refuses the
    position at once (no pair is drawn)."""
    from alignsearch.search import fit

    def no_pairs(*args, **kwargs):
        raise AssertionError("pairs drawn for a position no sequence has")

    monkeypatch.setattr(fit, "make_pairs", no_pairs)
    start = time.perf_counter()
    message = one_line(lambda: api.align(gru, position=position, progress=False))
    assert message.startswith(f"position='{position}' is not allowed: expected a position where the train")
    assert "none of 256 sequences of task multiobject has one there (they are 5 to 43 tokens long)" in message
    assert time.perf_counter() - start < 20


def test_the_command_line_refuses_such_a_position_before_it_trains(in_command_env) -> None:
    from tests.helpers import refusal

    line = refusal("run_alignment.py", "position=0", *TINY_TRAINING)
    assert line.startswith("error: position=0 is not allowed: expected a position where the train"), line
    assert not in_command_env.exists()  # no model trained into the zoo


def test_a_position_some_sequences_have_still_aligns(gru) -> None:
    result = api.align(gru, position=3, overrides=TINY_ALIGNMENT, **QUICK)
    assert result.config["position"] == "3"


def test_a_language_model_folder_whose_weights_are_a_pickle_is_one_line(tmp_path) -> None:
    """A ``pytorch_model.bin`` holding a pickled module, not tensors: transformers' multi-line
    UnpicklingError becomes one line (and the pickle is not run)."""
    transformers = pytest.importorskip("transformers")
    from alignsearch.text import toy

    folder = tmp_path / "pickled"
    tokenizer = toy.build_tokenizer()
    tokenizer.save_pretrained(folder)
    transformers.GPT2Config(vocab_size=len(tokenizer), n_embd=8, n_layer=1, n_head=2).save_pretrained(folder)
    torch.save(torch.nn.Linear(2, 2), folder / "pytorch_model.bin")
    message = one_line(lambda: api.language_model(folder))
    assert message.startswith(f"model={str(folder)!r} is not allowed: expected a causal language model whose")
    assert "holds other pickled objects" in message


# -- alignment files (search/saved.py) ----------------------------------------------------------------------
def _changed_file(das, tmp_path: Path, **change) -> Path:
    good = das.save(tmp_path / "good.pt")
    content = torch.load(good, weights_only=True)
    bad = tmp_path / "bad.pt"
    torch.save({**content, **change}, bad)
    return bad


@pytest.mark.parametrize(
    ("change", "says"),
    [({"models": None}, "models"), ({"state_dict": {}}, "state_dict")],
    ids=["models null", "empty state dict"],
)
def test_an_alignment_file_with_a_missing_part_is_one_line(das, gru, tmp_path, change, says) -> None:
    bad = _changed_file(das, tmp_path, **change)
    pairs = api.pairs(gru, n=20, seed=3)

    def evaluate():
        return api.iia(api.load_alignment(bad), [gru], pairs)

    message = one_line(evaluate)
    assert message.startswith(f"alignment={bad} is not allowed: expected an alignment file"), message
    assert says in message


# -- the printed form of iia ----------------------------------------------------------------------------------
def test_iia_prints_short_and_keeps_its_detail(das, gru) -> None:
    pairs = api.pairs(gru, n=40, seed=3)
    scores = api.iia(das, [gru], pairs)
    shown = repr(scores)
    n = len(scores["iia_by_position"])
    assert shown.endswith(f"'iia_by_position': {{...{n} positions}}}}") and len(shown) < 100, shown
    assert shown.startswith("{'iia': ") and "'token_iia': " in shown
    assert str(scores) == shown  # print() shows the same
    assert set(scores) >= {"iia", "token_iia", "iia_by_position"}  # the detail is still there
    assert scores["iia_by_position"] == dict(scores)["iia_by_position"]
    assert scores == api.iia(das, gru, pairs)


# -- what align takes, and the command line's rules for every argument ---------------------------------------
def test_bad_layer_names_each_layer_once(gru) -> None:
    with pytest.raises(ConfigError) as error:
        api.align(gru, layer=7, overrides=TINY_ALIGNMENT)
    assert str(error.value) == "layer=7 is not allowed: expected a layer of the gru: embedding, 0"


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
