"""Causal models: hand-worked trajectories, and agreement with the tasks they explain."""

from __future__ import annotations

import pytest
import torch

from alignsearch.errors import ConfigError
from alignsearch.seeding import generator
from alignsearch.tasks import ENVIRONMENT, ArithmeticTask, NumericTask, causal_model_for


def encode(task, text: str) -> torch.Tensor:
    return task.vocab.encode(text)[None, :]


def test_updown_by_hand() -> None:
    task = NumericTask()
    traj = causal_model_for(task, "updown").trajectory(encode(task, "B D0 D2 T R R E P"))
    assert traj.post["count"][0].tolist() == [0, 1, 2, 2, 1, 0, -1, -1]
    assert traj.post["phase"][0].tolist() == [-1, -1, -1, 1, 1, 1, 1, 1]
    assert traj.pre["count"][0].tolist() == [0, 0, 1, 2, 2, 1, 0, -1]
    assert traj.pre["phase"][0].tolist() == [-1, -1, -1, -1, 1, 1, 1, 1]


def test_updown_emissions_by_hand() -> None:
    task = NumericTask()
    cm = causal_model_for(task, "updown")
    R, E, P = task.vocab.id("R"), task.vocab.eos, task.vocab.pad
    env = ENVIRONMENT
    assert cm.emissions(encode(task, "B D0 D2 T R R E"))[0].tolist() == [env, env, env, R, R, E, P]


def test_mod_round_square_triggers_by_hand() -> None:
    mod = NumericTask(response="mod")
    traj = causal_model_for(mod, "updown").trajectory(encode(mod, "B D0 D1 D2 D0 D1 T R E"))
    assert traj.post["count"][0].tolist() == [0, 1, 2, 3, 4, 5, 1, 0, -1]
    square = NumericTask(response="square")
    traj = causal_model_for(square, "updown").trajectory(encode(square, "B D0 D1 T R"))
    assert traj.post["count"][0].tolist() == [0, 1, 2, 4, 3]
    rnd = NumericTask(response="round")
    traj = causal_model_for(rnd, "updown").trajectory(encode(rnd, "B D0 D1 D2 D0 T R"))
    assert traj.post["count"][0].tolist() == [0, 1, 2, 3, 4, 3, 2]


def test_upup_by_hand() -> None:
    task = NumericTask()
    cm = causal_model_for(task, "upup")
    traj = cm.trajectory(encode(task, "B D0 D2 T R R E"))
    assert traj.post["demo_count"][0].tolist() == [0, 1, 2, 2, 2, 2, 2]
    assert traj.post["resp_count"][0].tolist() == [0, 0, 0, 0, 1, 2, 3]
    assert traj.post["phase"][0].tolist() == [-1, -1, -1, 1, 1, 1, 1]
    R, E, P = task.vocab.id("R"), task.vocab.eos, task.vocab.pad
    assert cm.emissions(encode(task, "B D0 D2 T R R E"))[0, 3:].tolist() == [R, R, E, P]


def test_sameobject_demo_token_is_also_the_response() -> None:
    task = NumericTask(objects="same")
    traj = causal_model_for(task, "updown").trajectory(encode(task, "B D D T D D E"))
    assert traj.post["count"][0].tolist() == [0, 1, 2, 2, 1, 0, -1]


def test_increment_by_hand() -> None:
    task = NumericTask()
    cm = causal_model_for(task, "increment")
    traj = cm.trajectory(encode(task, "B D0 D1 D2 D0 T R R R R E"))
    assert traj.pre["incr"][0, 0].item() == pytest.approx(1 / 20)
    assert traj.post["incr"][0, 5].item() == pytest.approx(1 / 4)
    assert traj.post["count"][0].tolist() == pytest.approx([0, 1, 2, 3, 4, 0, 5, 10, 15, 20, -1])
    R, E = task.vocab.id("R"), task.vocab.eos
    assert cm.emissions(encode(task, "B D0 D1 D2 D0 T R R R R"))[0, 5:].tolist() == [R, R, R, R, E]


@pytest.mark.parametrize("objects", ["multi", "single", "same"])
@pytest.mark.parametrize("response", ["identity", "mod", "square", "round"])
@pytest.mark.parametrize("name", ["updown", "upup", "increment"])
def test_causal_model_explains_every_sampled_sequence(objects: str, response: str, name: str) -> None:
    """Where the task emits a task token, the program emits that token; elsewhere the environment speaks."""
    task = NumericTask(objects=objects, response=response, unk_p=0.2)
    if name == "increment" and response != "identity":
        with pytest.raises(ConfigError):
            causal_model_for(task, name)
        return
    batch = task.sample(400, generator(5, objects, response))
    emitted = causal_model_for(task, name).emissions(batch.ids)[:, :-1]
    nxt, task_next = batch.ids[:, 1:], batch.task_mask[:, 1:]
    assert torch.equal(emitted[task_next], nxt[task_next])
    before_trigger = ~task_next & (nxt != task.vocab.pad)
    assert (emitted[before_trigger] == ENVIRONMENT).all()


def test_causal_model_must_fit_the_task() -> None:
    with pytest.raises(ConfigError, match="causal_model=updown"):
        causal_model_for(ArithmeticTask(), "updown")
    with pytest.raises(ConfigError, match="one of updown, upup, increment"):
        causal_model_for(NumericTask(), "downdown")
