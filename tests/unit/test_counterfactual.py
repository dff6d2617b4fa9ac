"""Counterfactual pairs: worked examples of the swap rule, for each variable, mode and causal model."""

from __future__ import annotations

import time

import pytest
import torch

from alignsearch.errors import ConfigError
from alignsearch.seeding import generator
from alignsearch.tasks import NumericTask, SequenceBatch, causal_model_for
from alignsearch.tasks.counterfactual import counterfactual, make_pairs, swap_variables, training_ranges

TASK = NumericTask()


def seq(text: str, task=TASK) -> SequenceBatch:
    ids = task.vocab.encode(text)[None, :]
    after_trigger = torch.cumsum(ids == task.vocab.trigger, 1) > 0
    task_mask = after_trigger & (ids != task.vocab.trigger) & (ids != task.vocab.pad)
    return SequenceBatch(ids, task_mask, {}, task.vocab.pad)


def swap(
    base: str,
    i: int,
    source: str,
    j: int,
    variable: str,
    cm_name: str = "updown",
    task=TASK,
    stepwise=False,
    ranges=True,
):
    cm = causal_model_for(task, cm_name)
    ids, mask, ok = counterfactual(
        cm,
        seq(base, task),
        seq(source, task),
        torch.tensor([i]),
        torch.tensor([j]),
        swap_variables(cm, variable),
        stepwise=stepwise,
        ranges=training_ranges(task, cm) if ranges else None,
    )
    text = task.vocab.decode(ids[0]) if bool(ok[0]) else None
    return text, mask[0, : len(text.split())].int().tolist() if text else None


def test_count_swap_in_the_demo_phase_keeps_the_base_demos() -> None:
    # base has shown 2 demos at i=2 and will show 3 more; the source has counted 7 -> 10 responses
    text, mask = swap(
        "B D0 D1 D2 D0 D1 T R R R R R E", 2, "B D0 D0 D0 D0 D0 D0 D0 T R R R R R R R E", 7, "count"
    )
    assert text == "B D0 D1 D2 D0 D1 T " + "R " * 10 + "E"
    assert mask == [0] * 7 + [1] * 11


def test_count_swap_in_the_response_phase() -> None:
    text, mask = swap("B D0 D1 T R R E", 4, "B D0 D0 D0 D0 D0 D0 D0 T R R R R R R R E", 7, "count")
    assert text == "B D0 D1 T R " + "R " * 7 + "E"
    assert mask == [0, 0, 0, 0, 1] + [1] * 8
    # a response-phase source value: 5 responses left
    text, _ = swap("B D0 D1 T R R E", 4, "B D0 D0 D0 D0 D0 D0 D0 T R R E", 10, "count")
    assert text == "B D0 D1 T R R R R R R E"


def test_phase_swaps() -> None:
    # demo phase -> response phase: the base's count so far is answered at once, without a trigger
    text, mask = swap("B D0 D1 D2 T R R R E", 2, "B D0 T R E", 3, "phase")
    assert text == "B D0 D1 R R E" and mask == [0, 0, 0, 1, 1, 1]
    # response phase -> demo phase: the base has no demos left, so the pair is dropped
    assert swap("B D0 D1 T R R E", 4, "B D0 D0 D0 T R R R E", 2, "phase")[0] is None
    # a phase swap between equal phases changes nothing
    assert swap("B D0 D1 T R R E", 4, "B D0 T R E", 3, "phase")[0] == "B D0 D1 T R R E"


def test_full_swaps() -> None:
    text, _ = swap(
        "B D0 D1 D2 T R R R E", 2, "B D0 D0 D0 D0 D0 T R E", 7, "full"
    )  # source: count 4, response phase
    assert text == "B D0 D1 R R R R E"
    text, _ = swap(
        "B D0 D1 D2 T R R R E", 2, "B D0 D0 D0 D0 D0 T R E", 3, "full"
    )  # source: count 3, demo phase
    assert text == "B D0 D1 D2 T R R R R E"
    assert swap("B D0 D1 T R R E", 4, "B D0 D0 D0 T R R R E", 2, "full")[0] is None  # back to demos: dropped


def test_null_swap_is_the_base() -> None:
    assert swap("B D0 D1 D2 T R R R E", 2, "B D0 T R E", 1, "null")[0] == "B D0 D1 D2 T R R R E"


def test_extrapolation_pairs_are_dropped_unless_kept() -> None:
    base = "B " + "D0 " * 19 + "T " + "R " * 19 + "E"  # 19 demos; at i=1, 18 more will come
    source = "B " + "D1 " * 10 + "T " + "R " * 10 + "E"  # count 10 at j=10
    assert swap(base, 1, source, 10, "count")[0] is None  # 10 + 18 = 28 > max_count
    text, _ = swap(base, 1, source, 10, "count", ranges=False)
    assert text.count("R") == 28


def test_upup_and_increment_swaps() -> None:
    text, _ = swap("B D0 D1 D2 T R R R E", 2, "B D0 D0 D0 D0 D0 D0 T R E", 6, "demo_count", "upup")
    assert text == "B D0 D1 D2 T " + "R " * 7 + "E"  # 6 swapped in, one more demo shown
    text, _ = swap("B D0 D1 D2 T R R R E", 5, "B D0 D0 D0 T R R R E", 6, "resp_count", "upup")
    assert text == "B D0 D1 D2 T R R E"  # two responses counted after the first: one more to go
    text, _ = swap("B D0 D1 D2 D0 T R R R R E", 7, "B D0 D1 T R R E", 4, "incr", "increment")
    assert text == "B D0 D1 D2 D0 T R R R E"  # halfway after two responses; steps of 1/2 from there: one more


def test_mod_task_count_swap_uses_the_rule_at_the_trigger() -> None:
    task = NumericTask(response="mod")
    text, _ = swap("B D0 D1 D2 T R R R E", 1, "B D0 D0 D0 D0 D0 T R E", 4, "count", task=task)
    assert text == "B D0 D1 D2 T R R E"  # count 4 + 2 more demos = 6 -> 6 mod 4 = 2 responses


def test_stepwise_clears_the_prefix_task_mask() -> None:
    text, mask = swap("B D0 D1 T R R E", 4, "B D0 D0 D0 D0 T R R R R E", 4, "count", stepwise=True)
    assert text == "B D0 D1 T R R R R R E"  # after its 4th demo the source holds count 4: 4 more responses
    assert mask == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]


@pytest.mark.parametrize("variable", ["count", "phase", "full", "null"])
@pytest.mark.parametrize("stepwise", [False, True])
def test_make_pairs_positions_and_reproducibility(variable: str, stepwise: bool) -> None:
    cm = causal_model_for(TASK, "updown")
    pairs = make_pairs(TASK, cm, variable, 500, generator(0, variable), stepwise=stepwise)
    again = make_pairs(TASK, cm, variable, 500, generator(0, variable), stepwise=stepwise)
    assert len(pairs) == 500 and torch.equal(pairs.ids, again.ids)
    v = TASK.vocab
    for ids, pos in ((pairs.base.ids, pairs.base_pos), (pairs.source.ids, pairs.source_pos)):
        at = ids[torch.arange(500), pos]
        assert not torch.isin(at, torch.tensor([v.pad, v.bos, v.eos, v.trigger])).any()
    if stepwise:
        assert torch.equal(pairs.base_pos, pairs.source_pos)
    assert torch.equal(pairs.ids[:, :1], torch.full((500, 1), v.bos))
    assert (pairs.ids == v.eos).sum(1).eq(1).all()  # every counterfactual ends once
    if variable == "null":
        assert torch.equal(pairs.ids, pairs.base.ids[:, : pairs.ids.shape[1]])


def test_heldout_split_bases_have_held_out_counts() -> None:
    cm = causal_model_for(TASK, "updown")
    pairs = make_pairs(TASK, cm, "count", 300, generator(1), split="heldout")
    assert set(pairs.base.variables["obj_count"].tolist()) <= {4, 9, 14, 17}
    assert not set(pairs.source.variables["obj_count"].tolist()) & {4, 9, 14, 17}


def test_unknown_variable_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="variables=speed .*count, phase, full, null"):
        swap_variables(causal_model_for(TASK, "updown"), "speed")


def test_ten_thousand_pairs_are_fast() -> None:
    cm = causal_model_for(TASK, "updown")
    make_pairs(TASK, cm, "count", 100, generator(0))
    start = time.perf_counter()
    make_pairs(TASK, cm, "count", 10_000, generator(2))
    assert (
        time.perf_counter() - start < 2.0
    )  # the benchmark measures the 0.5 s target; this guards regressions
