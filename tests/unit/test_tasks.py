"""Task grammar, sampling reproducibility and held-out counts; every conf/task choice keeps the Task protocol."""

from __future__ import annotations

import textwrap

import pytest
import torch

from alignsearch.components import build_task
from alignsearch.errors import ConfigError
from alignsearch.seeding import generator
from alignsearch.tasks import ArithmeticTask, CountTask, NumericTask, numeric_vocabulary
from tests.helpers import CONF, check_task, conf_node

RULES = {
    "identity": lambda n: n,
    "mod": lambda n: n % 4,
    "square": lambda n: n * n,
    "round": lambda n: int((n + 1) // 3 * 3),
}


@pytest.mark.parametrize("objects", ["multi", "single", "same"])
@pytest.mark.parametrize("response", list(RULES))
@pytest.mark.parametrize("unk_p", [0.0, 0.3])
def test_numeric_grammar(objects: str, response: str, unk_p: float) -> None:
    task = NumericTask(objects=objects, response=response, unk_p=unk_p)
    v = task.vocab
    batch = task.sample(300, generator(0, objects, response))
    for ids, mask, n in zip(
        batch.ids.tolist(), batch.task_mask.tolist(), batch.variables["obj_count"].tolist(), strict=True
    ):
        ids = [i for i in ids if i != v.pad]
        mask = mask[: len(ids)]
        assert ids[0] == v.bos and ids[-1] == v.eos
        t = ids.index(v.trigger)
        demo_part, answer = ids[1:t], ids[t + 1 :]
        assert sum(i in v.demo for i in demo_part) == n
        assert all(i in v.demo or i == v.void for i in demo_part)
        assert (v.void is None) == (unk_p == 0)
        assert answer == [v.response[0]] * RULES[response](n) + [v.eos]
        assert mask == [False] * (t + 1) + [True] * len(answer)
        assert v.trigger not in ids[t + 1 :]


def test_void_tokens_appear_with_unk_p() -> None:
    task = NumericTask(unk_p=0.3)
    batch = task.sample(500, generator(1))
    share = (batch.ids == task.vocab.void).sum() / (batch.ids != task.vocab.pad).sum()
    assert 0.1 < share < 0.4
    assert "U" not in NumericTask().vocab.tokens


def test_sample_sequence_and_vocabulary() -> None:
    v = numeric_vocabulary("multi")
    assert v.tokens == ("P", "B", "E", "D0", "D1", "D2", "R", "T")
    assert (v.pad, v.bos, v.eos, v.trigger, v.response) == (0, 1, 2, 7, (6,))
    same = numeric_vocabulary("same")
    assert same.response == same.demo == (3,)
    batch = NumericTask().sample(1, generator(0), counts=torch.tensor([3]))
    text = v.decode(batch.ids[0])
    assert text.startswith("B ") and text.endswith("T R R R E") and len(text.split()) == 9


def test_seeded_determinism() -> None:
    task = NumericTask(unk_p=0.2)
    a = task.sample(200, generator(7, "x"))
    b = task.sample(200, generator(7, "x"))
    c = task.sample(200, generator(8, "x"))
    assert torch.equal(a.ids, b.ids) and torch.equal(a.task_mask, b.task_mask)
    assert not torch.equal(a.ids[:, :5], c.ids[:, :5])


def test_no_held_out_count_in_training_data() -> None:
    task = NumericTask()
    batch = task.sample(100_000, generator(0))
    counts = batch.variables["obj_count"]
    shown = torch.isin(batch.ids, torch.tensor(task.vocab.demo)).sum(1)
    assert torch.equal(counts, shown)
    assert not torch.isin(counts, torch.tensor([4, 9, 14, 17])).any()
    assert set(counts.unique().tolist()) == set(range(1, 21)) - {4, 9, 14, 17}
    held = task.sample(1000, generator(0), split="heldout").variables["obj_count"]
    assert set(held.unique().tolist()) == {4, 9, 14, 17}


def test_arithmetic_grammar() -> None:
    task = ArithmeticTask(max_ops=6)
    v = task.vocab
    batch = task.sample(300, generator(3))
    for ids, mask in zip(batch.ids.tolist(), batch.task_mask.tolist(), strict=True):
        tokens = v.decode(ids).split()
        mask = mask[: len(tokens)]
        n_ops, value = int(tokens[1]), int(tokens[2])
        assert tokens[0] == "B" and tokens[-1] == "E" and tokens.count("=") == n_ops
        for k in range(n_ops):
            op, operand, eq, result, sep = tokens[3 + 5 * k : 8 + 5 * k]
            value = value + int(operand) if op == "+" else value - int(operand)
            assert eq == "=" and int(result) == value and 0 <= value <= 20
            assert sep == ("E" if k == n_ops - 1 else ",")
            assert mask[3 + 5 * k : 8 + 5 * k] == [False, False, True, True, True]
        assert not any(mask[:3])


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"min_count": 25}, "min_count"),
        ({"min_count": 0}, "min_count"),
        ({"max_count": 3, "hold_outs": [1, 2, 3]}, "hold_outs"),
        ({"unk_p": 1.0}, "unk_p"),
        ({"objects": "many"}, "objects"),
        ({"response": "cube"}, "response"),
    ],
)
def test_bad_task_settings(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        NumericTask(**kwargs)
    assert err.value.key == key
    assert "\n" not in str(err.value)


# -- the Task protocol, on every conf/task choice ------------------------------------------------------------
TASK_CONFIGS = sorted((CONF / "task").glob("*.yaml"))


@pytest.mark.parametrize("path", TASK_CONFIGS, ids=lambda p: p.stem)
def test_every_task_config_keeps_the_task_protocol(path) -> None:
    task = build_task(conf_node(path))
    check_task(task)
    assert task.name == path.stem


def test_the_protocol_example_is_a_task() -> None:
    """The example in the protocol's docstring runs and keeps the protocol."""
    import alignsearch.tasks.protocol as protocol

    code = textwrap.dedent(protocol.__doc__.split("::\n", 1)[1].split("\n\n``isinstance", 1)[0])
    scope: dict = {}
    exec(code, scope)  # our own documentation
    echo = scope["Echo"]()
    check_task(echo)
    assert isinstance(echo, CountTask) and echo.settings() == {"max_count": 5}
    batch = echo.sample(1, counts=torch.tensor([2]))
    assert echo.vocab.decode(batch.ids[0]) == "B X X = Y Y E"
    assert batch.task_mask[0].tolist() == [False] * 4 + [True] * 3
