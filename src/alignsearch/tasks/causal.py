"""Causal models: the symbolic programs whose variables we look for inside trained networks.

Each model is a vectorised state machine over a batch. ``step(state, tokens)`` consumes one token per
row; ``emit(state)`` says which token the program produces next, or :data:`ENVIRONMENT` when the next
token is not the program's to choose (demo tokens, the trigger, voids: the world decides those).
``trajectory(ids)`` replays whole sequences and gives every variable before and after every position.

Up-Down on ``B D0 D2 T R R E`` (``count``, ``phase``: -1 demonstration, +1 response)::

    token         B    D0   D2   T    R    R    E
    count after   0    1    2    2    1    0   -1
    phase after  -1   -1   -1   +1   +1   +1   +1
    emit after  env  env  env    R    R    E  PAD

``E`` and ``P`` end a run: ``count`` becomes -1 and the program emits padding from then on.

**Registry.** A causal model registers itself by name with :func:`register_causal_model` and says which
tasks it explains with :meth:`CausalModel.fits`; :func:`causal_model_for` builds it for a task with
:meth:`CausalModel.for_task`. A new one is a class in any module the task's module imports (or the
task's own module)::

    @register_causal_model
    class Tally(CausalModel):
        name = "tally"
        variables = ("count", "phase")

        @classmethod
        def fits(cls, task) -> bool:
            return isinstance(task, MyTask)

        ...  # init_state, step, emit

and ``alignment.causal_model=tally`` selects it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from alignsearch.errors import ConfigError
from alignsearch.tasks.rules import Rule
from alignsearch.tasks.vocab import Vocabulary

ENVIRONMENT = -1
"""What :meth:`CausalModel.emit` returns where the next token is the environment's, not the program's."""

DEMO_PHASE, RESPONSE_PHASE = -1, 1

State = dict[str, Tensor]

CAUSAL_MODELS: dict[str, type[CausalModel]] = {}
"""Every registered causal model by name (:func:`register_causal_model`)."""


def register_causal_model(cls: type[CausalModel]) -> type[CausalModel]:
    """Class decorator: make ``cls`` available by its ``name`` to :func:`causal_model_for` (and so to
    ``alignment.causal_model``). Registering another class under a taken name is an error; registering
    the same class again (a module imported twice) replaces it."""
    taken = CAUSAL_MODELS.get(cls.name)
    if taken is not None and (taken.__module__, taken.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(
            f"causal model name {cls.name!r} is taken by {taken.__module__}.{taken.__qualname__}"
        )
    CAUSAL_MODELS[cls.name] = cls
    return cls


@dataclass
class Trajectory:
    """Variables of a batch of sequences: ``pre[k][b, p]`` before token ``p``, ``post[k][b, p]`` after it."""

    pre: State
    post: State


class CausalModel:
    """Base class: subclasses define ``name``, ``variables``, ``init_state``, ``step`` and ``emit``.

    ``variables`` must include ``phase`` (:data:`DEMO_PHASE` while the environment speaks, other values
    after): counterfactual pairs keep each variable within its training range per phase.
    """

    name: str
    variables: tuple[str, ...]

    @classmethod
    def fits(cls, task) -> bool:
        """Whether this program explains ``task``'s sequences. The default: a counting task, whose
        vocabulary has demo, trigger and response tokens and which has a response ``rule``."""
        vocab = getattr(task, "vocab", None)
        return (
            vocab is not None
            and vocab.trigger is not None
            and bool(vocab.demo)
            and bool(vocab.response)
            and hasattr(task, "rule")
        )

    @classmethod
    def for_task(cls, task) -> CausalModel:
        """This program for ``task`` (which :meth:`fits`), with the task's vocabulary and rule."""
        return cls(task.vocab, task.rule)

    def __init__(self, vocab: Vocabulary, rule: Rule) -> None:
        if vocab.trigger is None or not vocab.demo or not vocab.response:
            raise ConfigError("causal_model", self.name, "a task with demo, trigger and response tokens")
        self.vocab, self.rule = vocab, rule
        self._demo = torch.tensor(vocab.demo)
        self._response = torch.tensor(vocab.response)

    def init_state(self, batch: int) -> State:
        raise NotImplementedError

    def step(self, state: State, tokens: Tensor) -> State:
        raise NotImplementedError

    def emit(self, state: State) -> Tensor:
        raise NotImplementedError

    def _classify(self, state: State, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Masks of (demo, trigger, response, end) tokens, read in the light of the current phase.

        A demo token only counts in the demonstration phase and a response only in the response phase,
        so SameObject (whose response token is its demo token) is read correctly.
        """
        demo_phase = state["phase"] == DEMO_PHASE
        is_demo = demo_phase & torch.isin(tokens, self._demo)
        is_trigger = demo_phase & (tokens == self.vocab.trigger)
        is_response = ~demo_phase & torch.isin(tokens, self._response)
        is_end = (tokens == self.vocab.eos) | (tokens == self.vocab.pad)
        return is_demo, is_trigger, is_response, is_end

    def trajectory(self, ids: Tensor) -> Trajectory:
        """Replay ``ids`` (batch, length): every variable before and after each position."""
        state = self.init_state(ids.shape[0])
        pre: dict[str, list[Tensor]] = {k: [] for k in state}
        post: dict[str, list[Tensor]] = {k: [] for k in state}
        for p in range(ids.shape[1]):
            for k, v in state.items():
                pre[k].append(v)
            state = self.step(state, ids[:, p])
            for k, v in state.items():
                post[k].append(v)
        return Trajectory(
            {k: torch.stack(v, 1) for k, v in pre.items()}, {k: torch.stack(v, 1) for k, v in post.items()}
        )

    def emissions(self, ids: Tensor) -> Tensor:
        """What the program emits after each position of ``ids``: a token id, or :data:`ENVIRONMENT`."""
        state = self.init_state(ids.shape[0])
        out = []
        for p in range(ids.shape[1]):
            state = self.step(state, ids[:, p])
            out.append(self.emit(state))
        return torch.stack(out, 1)


@register_causal_model
class UpDown(CausalModel):
    """Count up during the demonstration, apply the rule at the trigger, count down with each response.

    Variables: ``count`` and ``phase``. The program emits a response while ``count > 0`` in the
    response phase, EOS at ``count == 0``, and padding after the end.
    """

    name = "updown"
    variables = ("count", "phase")

    def init_state(self, batch: int) -> State:
        return {"count": torch.zeros(batch, dtype=torch.long), "phase": torch.full((batch,), DEMO_PHASE)}

    def step(self, state: State, tokens: Tensor) -> State:
        is_demo, is_trigger, is_response, is_end = self._classify(state, tokens)
        count, phase = state["count"], state["phase"]
        count = torch.where(is_demo, count + 1, count)
        count = torch.where(is_trigger, self.rule(count), count)
        count = torch.where(is_response, count - 1, count)
        phase = torch.where(is_trigger, RESPONSE_PHASE, phase)
        count = torch.where(is_end, -1, count)
        phase = torch.where(is_end, RESPONSE_PHASE, phase)
        return {"count": count, "phase": phase}

    def emit(self, state: State) -> Tensor:
        count = state["count"]
        token = torch.where(
            count > 0, self.vocab.response[0], torch.where(count == 0, self.vocab.eos, self.vocab.pad)
        )
        return torch.where(state["phase"] == DEMO_PHASE, ENVIRONMENT, token)


@register_causal_model
class UpUp(CausalModel):
    """Count demos up, then count responses up until they match the rule applied to the demo count.

    Variables: ``demo_count``, ``resp_count``, ``phase``. After the end ``resp_count`` is one past the
    target, so the program emits padding.
    """

    name = "upup"
    variables = ("demo_count", "resp_count", "phase")

    def init_state(self, batch: int) -> State:
        zeros = torch.zeros(batch, dtype=torch.long)
        return {"demo_count": zeros, "resp_count": zeros, "phase": torch.full((batch,), DEMO_PHASE)}

    def step(self, state: State, tokens: Tensor) -> State:
        is_demo, is_trigger, is_response, is_end = self._classify(state, tokens)
        demo, resp, phase = state["demo_count"], state["resp_count"], state["phase"]
        demo = torch.where(is_demo, demo + 1, demo)
        resp = torch.where(is_response, resp + 1, resp)
        phase = torch.where(is_trigger | is_end, RESPONSE_PHASE, phase)
        resp = torch.where(is_end, self.rule(demo) + 1, resp)
        return {"demo_count": demo, "resp_count": resp, "phase": phase}

    def emit(self, state: State) -> Tensor:
        target, resp = self.rule(state["demo_count"]), state["resp_count"]
        token = torch.where(
            resp < target, self.vocab.response[0], torch.where(resp == target, self.vocab.eos, self.vocab.pad)
        )
        return torch.where(state["phase"] == DEMO_PHASE, ENVIRONMENT, token)


@register_causal_model
class Increment(CausalModel):
    """Count demos up; at the trigger keep only an increment ``incr = 1 / count`` and restart ``count``
    at 0; each response adds ``incr * max_count``; EOS once ``count`` reaches ``max_count``.

    Variables: ``count`` (a float after the trigger), ``incr``, ``phase``. ``incr`` starts at
    ``1 / max_count``. The rule must be ``identity`` (the response count equals the demo count).
    """

    name = "increment"
    variables = ("count", "incr", "phase")

    def __init__(self, vocab: Vocabulary, rule: Rule, max_count: int = 20) -> None:
        super().__init__(vocab, rule)
        self.max_count = float(max_count)
        self.threshold = self.max_count - 1 / (2 * self.max_count)

    @classmethod
    def fits(cls, task) -> bool:
        """A counting task whose rule is ``identity`` (the response count is the demo count)."""
        return super().fits(task) and getattr(task, "response", None) == "identity"

    @classmethod
    def for_task(cls, task) -> Increment:
        return cls(task.vocab, task.rule, task.max_count)

    def init_state(self, batch: int) -> State:
        return {
            "count": torch.zeros(batch),
            "incr": torch.full((batch,), 1 / self.max_count),
            "phase": torch.full((batch,), DEMO_PHASE),
        }

    def step(self, state: State, tokens: Tensor) -> State:
        is_demo, is_trigger, is_response, is_end = self._classify(state, tokens)
        count, incr, phase = state["count"], state["incr"], state["phase"]
        count = torch.where(is_demo, count + 1, count)
        incr = torch.where(is_trigger, 1 / count.clamp_min(1), incr)
        count = torch.where(is_trigger, 0.0, count)
        count = torch.where(is_response, count + incr * self.max_count, count)
        phase = torch.where(is_trigger | is_end, RESPONSE_PHASE, phase)
        count = torch.where(is_end, -1.0, count)
        return {"count": count, "incr": incr, "phase": phase}

    def emit(self, state: State) -> Tensor:
        count = state["count"]
        token = torch.where(
            count < 0,
            self.vocab.pad,
            torch.where(count >= self.threshold, self.vocab.eos, self.vocab.response[0]),
        )
        return torch.where(state["phase"] == DEMO_PHASE, ENVIRONMENT, token)


def causal_models_for(task) -> list[str]:
    """The names of the registered causal models that fit ``task``, in registration order."""
    return [name for name, cls in CAUSAL_MODELS.items() if cls.fits(task)]


def causal_model_for(task, name: str = "updown") -> CausalModel:
    """The causal model ``name`` for ``task``, built by the model itself from the task's settings; a
    one-line ConfigError listing the causal models that fit the task if ``name`` is not one of them."""
    fitting = causal_models_for(task)
    if name in fitting:
        return CAUSAL_MODELS[name].for_task(task)
    if name not in CAUSAL_MODELS and fitting:
        raise ConfigError("causal_model", name, f"one of {', '.join(fitting)}")
    allowed = ", ".join(fitting) or "none (no registered causal model explains it)"
    raise ConfigError("causal_model", name, f"a causal model of task {task.name}: {allowed}")
