"""Causal models: hand-worked trajectories, and agreement with the tasks they explain."""

from __future__ import annotations

import pytest
import torch

from alignsearch.components import build_task
from alignsearch.errors import ConfigError
from alignsearch.seeding import generator
from alignsearch.tasks import (
    CAUSAL_MODELS,
    ENVIRONMENT,
    ArithmeticTask,
    CausalModel,
    NumericTask,
    causal_model_for,
    causal_models_for,
    register_causal_model,
)
from tests.helpers import CONF, conf_node


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


# -- the registry: every causal model that fits a conf/task choice explains its sequences ---------------------
@pytest.mark.parametrize("path", sorted((CONF / "task").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_fitting_causal_model_explains_the_task(path) -> None:
    task = build_task(conf_node(path))
    names = causal_models_for(task)
    assert names == [n for n in CAUSAL_MODELS if CAUSAL_MODELS[n].fits(task)]
    batch = task.sample(200, generator(3, path.stem))
    for name in names:
        cm = causal_model_for(task, name)
        assert cm.name == name and "phase" in cm.variables
        emitted = cm.emissions(batch.ids)[:, :-1]
        nxt, task_next = batch.ids[:, 1:], batch.task_mask[:, 1:]
        assert torch.equal(emitted[task_next], nxt[task_next]), name
    for name in set(CAUSAL_MODELS) - set(names):
        with pytest.raises(ConfigError, match=f"a causal model of task {task.name}"):
            causal_model_for(task, name)


def test_unknown_names_list_the_causal_models_of_the_task() -> None:
    with pytest.raises(
        ConfigError, match=r"^causal_model=downdown is not allowed: expected one of updown, upup$"
    ):
        causal_model_for(NumericTask(response="mod"), "downdown")
    with pytest.raises(ConfigError, match="a causal model of task multiobject_mod: updown, upup$"):
        causal_model_for(NumericTask(response="mod"), "increment")


def test_a_causal_model_registers_by_name() -> None:
    @register_causal_model
    class Nothing(CausalModel):
        name = "nothing_for_a_test"
        variables = ("phase",)

        @classmethod
        def fits(cls, task) -> bool:
            return isinstance(task, ArithmeticTask)

        @classmethod
        def for_task(cls, task):
            return cls.__new__(cls)

    try:
        assert causal_models_for(ArithmeticTask()) == ["nothing_for_a_test"]
        assert isinstance(causal_model_for(ArithmeticTask(), "nothing_for_a_test"), Nothing)
        assert "nothing_for_a_test" not in causal_models_for(NumericTask())
        with pytest.raises(ValueError, match="taken by"):
            register_causal_model(type("Other", (Nothing,), {}))
    finally:
        del CAUSAL_MODELS["nothing_for_a_test"]
