"""Counterfactual pairs: what a sequence becomes when a causal variable is swapped in from another run.

**The rule.** An interchange intervention at base position ``i`` with source position ``j`` lets the
base consume its token ``i``; then the swapped variables take the values the source holds after its
token ``j``, and the causal model carries on from that state:

* task tokens (responses, EOS) are the causal model's own emissions;
* environment tokens (demos, the trigger, voids) keep coming from the base sequence, in order, from
  position ``i + 1`` on, for as long as the causal model asks for them;
* a pair whose causal model asks for an environment token the base no longer has (a swap back into the
  demonstration phase after the base's trigger), or that can never end, is dropped;
* a pair whose continuation takes a variable outside the range it has on training sequences (a swapped
  count of 18 plus 10 remaining demos asks for 28 responses) is an *extrapolation* pair: dropped by
  default, kept with ``keep_extrapolation=True``.

Worked examples (MultiObject, Up-Down; ``count`` / ``phase`` after the position):

=================================  ======  =============================  ===============================
base (position i marked [ ])       swap    source value after j           counterfactual continuation
=================================  ======  =============================  ===============================
``B D0 [D1] D2 D0 D1 T R R R R R E``  count  7 (demo phase)                 ``D2 D0 D1 T`` + 10 ``R`` + ``E``
``B D0 D1 T R [R] R E``              count  7 (from either phase)          7 ``R`` + ``E``
``B D0 [D1] D2 T R R R E``           phase  +1 (response phase)            ``R R E`` (count 2, no trigger)
``B D0 D1 T R [R] R E``              phase  -1 (demo phase)                dropped: the base has no demos left
``B D0 [D1] D2 T R R R E``           full   count 4, phase +1              ``R R R R E``
=================================  ======  =============================  ===============================

Modes: *indywise* draws ``i`` and ``j`` independently; *stepwise* uses ``j = i`` and intervenes on every
position ``0..i`` of the base with the source's vector at the same position (the task mask of that
prefix is cleared: its predictions come from intervened states). Positions are never PAD, BOS, EOS or
the trigger. A fixed ``position`` (:class:`~alignsearch.settings.Position`; indywise only) intervenes
at the same place in every base and every source sequence instead of drawing it: a token index counted
from the start (``1``: the first demo) or from the end (``-2``: the last response, before the EOS), or a
token of the vocabulary (its first occurrence) moved by an offset (``marker:T:-1``: the last demo,
``marker:T:+1``: the first response); sequences where it falls on no valid position are not drawn. The variable ``null`` swaps nothing in the causal model: the counterfactual is the base
itself, and the aligned remainder subspace is trained to change nothing. ``full`` swaps every variable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from alignsearch.errors import ConfigError, require_positive
from alignsearch.settings import Position
from alignsearch.tasks.batch import SequenceBatch
from alignsearch.tasks.causal import ENVIRONMENT, CausalModel, State

NULL, FULL = "null", "full"


@dataclass
class CounterfactualPairs:
    """``n`` pairs for one swapped variable.

    ``ids``/``task_mask`` (n, L): the counterfactual sequence the intervened model should produce (the base
    up to ``base_pos``, then the continuation); ``source`` the source sequences; ``base_pos`` and
    ``source_pos`` (n,) the intervention positions; ``base`` the unchanged base sequences; ``state`` the
    causal model's variables right after the intervention (base state with the swapped values), one (n,)
    tensor per variable, e.g. ``{"count": tensor([7, 3]), "phase": tensor([-1, 1])}``.
    """

    variable: str
    stepwise: bool
    ids: Tensor
    task_mask: Tensor
    base_pos: Tensor
    source_pos: Tensor
    base: SequenceBatch
    source: SequenceBatch
    state: State
    task: Any = None
    """The task of the base sequences (whose vocabulary ``ids`` are in)."""
    causal_model: str | None = None
    """The name of the causal model the base sequences' counterfactuals follow (``updown``)."""
    source_task: Any = None
    """The task of the source sequences (None: :attr:`task`)."""
    source_causal_model: str | None = None
    """The name of the causal model the source sequences' values are read by (None: :attr:`causal_model`)."""

    def __len__(self) -> int:
        return self.ids.shape[0]


def swap_variables(causal_model: CausalModel, variable: str) -> tuple[str, ...]:
    """The causal-model variables that ``variable`` swaps (``full``: all, ``null``: none)."""
    if variable == NULL:
        return ()
    if variable == FULL:
        return causal_model.variables
    if variable not in causal_model.variables:
        allowed = ", ".join([*causal_model.variables, FULL, NULL])
        raise ConfigError(
            "variables", variable, f"a variable of the {causal_model.name} causal model: {allowed}"
        )
    return (variable,)


def valid_positions(seqs: SequenceBatch, causal_model: CausalModel) -> Tensor:
    """Where an intervention may happen: not PAD, BOS, EOS or the trigger."""
    v = causal_model.vocab
    ids = seqs.ids
    return (ids != v.pad) & (ids != v.bos) & (ids != v.eos) & (ids != v.trigger)


def check_position(vocab, position: Position) -> int | None:
    """The token id of ``position``'s marker in ``vocab`` (None for a token index), or a ConfigError."""
    if position.marker is None:
        return None
    if position.marker not in vocab.tokens:
        raise ConfigError(
            "position",
            position.spec,
            f"a token index or marker:<token> with a token of the task ({' '.join(vocab.tokens)})",
        )
    return vocab.id(position.marker)


POSITION_PROBE = 16
"""Sequences of each training count :func:`check_position_occurs` draws to tell at once whether a fixed
position occurs at all."""


def check_position_occurs(task, causal_model: CausalModel, position: Position | None) -> None:
    """A one-line ConfigError if no training sequence of ``task`` can be intervened on at ``position``
    (:func:`fixed_positions` on :data:`POSITION_PROBE` sequences of each training count, drawn with their
    own generator): found in milliseconds, before any pair is drawn for it (``0``, the BOS; an index past
    the longest sequence). A position only some sequences have passes; :func:`make_pairs` then says how
    many pairs it found there."""
    if position is None:
        return
    check_position(causal_model.vocab, position)
    counts = task.train_counts.repeat(POSITION_PROBE)
    seqs = task.sample(len(counts), torch.Generator().manual_seed(0), counts=counts)
    _, ok = fixed_positions(seqs, causal_model, position)
    if not ok.any():
        lengths = (seqs.ids != causal_model.vocab.pad).sum(1)
        raise ConfigError(
            "position",
            position.spec,
            f"a position where the train sequences can be intervened on (never PAD, BOS, EOS or the "
            f"trigger): none of {len(seqs)} sequences of task {task.name} has one there (they are "
            f"{int(lengths.min())} to {int(lengths.max())} tokens long)",
        )


def fixed_positions(
    seqs: SequenceBatch, causal_model: CausalModel, position: Position
) -> tuple[Tensor, Tensor]:
    """Where ``position`` falls in each sequence, and whether that is a valid intervention position
    (:func:`valid_positions`): ``(pos, ok)``, both (n,)."""
    ids = seqs.ids
    n, length = ids.shape
    lengths = (ids != causal_model.vocab.pad).sum(1)
    marker = check_position(causal_model.vocab, position)
    if marker is None:
        index = position.index
        assert index is not None  # a position without a marker is an index
        pos = torch.full((n,), index) if index >= 0 else lengths + index
        found = torch.ones(n, dtype=torch.bool)
    else:
        match = ids == marker
        found = match.any(1)
        pos = match.long().argmax(1) + position.offset
    inside = found & (pos >= 0) & (pos < lengths)
    pos = pos.clamp(0, length - 1)
    return pos, inside & valid_positions(seqs, causal_model)[torch.arange(n), pos]


def training_ranges(task, causal_model: CausalModel) -> dict[tuple[str, int], tuple[float, float]]:
    """(min, max) of every variable in each phase over sequences of every training count."""
    seqs = task.sample(len(task.train_counts), torch.Generator().manual_seed(0), counts=task.train_counts)
    post = causal_model.trajectory(seqs.ids).post
    live = seqs.ids != causal_model.vocab.pad
    live &= seqs.ids != causal_model.vocab.eos
    ranges = {}
    for phase in post["phase"][live].unique().tolist():
        where = live & (post["phase"] == phase)
        for name, values in post.items():
            ranges[name, phase] = (float(values[where].min()), float(values[where].max()))
    return ranges


def _uniform_position(mask: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.multinomial(mask.float(), 1, generator=generator).squeeze(1)


def _pad_to(t: Tensor, length: int, value) -> Tensor:
    return torch.nn.functional.pad(t, (0, length - t.shape[1]), value=value)


def continue_from(
    causal_model: CausalModel, state: State, base: SequenceBatch, start: Tensor, max_len: int
) -> tuple[Tensor, Tensor, Tensor, list[State]]:
    """Run the causal model from ``state``, taking environment tokens from ``base`` at ``start, start+1, ...``.

    Returns the continuation tokens and task mask (n, max_len), a per-row ``ok`` flag (False where the
    base ran out of environment tokens, the program emitted padding, or it did not end within
    ``max_len``), and the states after each continuation token.
    """
    v = causal_model.vocab
    n, base_len = base.ids.shape
    base_ids = torch.cat([base.ids, torch.full((n, 1), v.pad)], 1)
    env_left = torch.cat(
        [~base.task_mask & (base.ids != v.pad) & (base.ids != v.eos), torch.zeros(n, 1, dtype=torch.bool)], 1
    )
    ptr = start.clone()
    done = torch.zeros(n, dtype=torch.bool)
    ok = torch.ones(n, dtype=torch.bool)
    tokens, task, states = [], [], [state]
    rows = torch.arange(n)
    for _ in range(max_len):
        emitted = causal_model.emit(state)
        wants_env = emitted == ENVIRONMENT
        at = ptr.clamp(max=base_len)
        ok &= done | ~(wants_env & ~env_left[rows, at])  # the base has no environment token left
        ok &= done | (emitted != v.pad)  # the program cannot end from here
        token = torch.where(wants_env, base_ids[rows, at], emitted)
        token = torch.where(done | ~ok, v.pad, token)
        tokens.append(token)
        task.append(~wants_env & ~done & ok)
        ptr = ptr + (wants_env & ~done).long()
        state = causal_model.step(state, token)
        states.append(state)
        done |= (token == v.eos) | ~ok
        if bool(done.all()):
            break
    ok &= done
    return torch.stack(tokens, 1), torch.stack(task, 1), ok, states


def _within_ranges(states: list[State], ranges, active: Tensor) -> Tensor:
    """Rows whose every state (while ``active``) lies within the training ranges of its phase."""
    inside = torch.ones(active.shape[0], dtype=torch.bool)
    for t, state in enumerate(states):
        live = active[:, t]
        for (name, phase), (lo, hi) in ranges.items():
            here = live & (state["phase"] == phase)
            values = state[name].float()
            inside &= ~here | ((values >= lo) & (values <= hi))
    return inside


def counterfactual(
    causal_model: CausalModel,
    base: SequenceBatch,
    source: SequenceBatch,
    base_pos: Tensor,
    source_pos: Tensor,
    variables: tuple[str, ...],
    *,
    source_causal_model: CausalModel | None = None,
    source_variables: tuple[str, ...] | None = None,
    stepwise: bool = False,
    ranges: dict | None = None,
    max_len: int = 128,
) -> tuple[Tensor, Tensor, Tensor]:
    """The counterfactual sequences of given pairs: ``(ids, task_mask, ok)``; ``ok`` is False where the pair
    must be dropped (see the module docstring). ``variables`` are the target causal model's variables to
    swap; ``source_variables`` the source's (by position; default: the same names)."""
    ids, task_mask, ok, _ = _counterfactual(
        causal_model,
        base,
        source,
        base_pos,
        source_pos,
        variables,
        source_causal_model=source_causal_model,
        source_variables=source_variables,
        stepwise=stepwise,
        ranges=ranges,
        max_len=max_len,
    )
    return ids, task_mask, ok


def _counterfactual(
    causal_model: CausalModel,
    base: SequenceBatch,
    source: SequenceBatch,
    base_pos: Tensor,
    source_pos: Tensor,
    variables: tuple[str, ...],
    *,
    source_causal_model: CausalModel | None,
    source_variables: tuple[str, ...] | None,
    stepwise: bool,
    ranges: dict | None,
    max_len: int,
) -> tuple[Tensor, Tensor, Tensor, State]:
    """:func:`counterfactual`, plus the intervened state."""
    source_cm = source_causal_model or causal_model
    source_variables = source_variables or variables
    n = len(base)
    rows = torch.arange(n)
    base_post = causal_model.trajectory(base.ids).post
    state = {k: v[rows, base_pos.clamp(max=base.ids.shape[1] - 1)] for k, v in base_post.items()}
    if variables:
        source_post = source_cm.trajectory(source.ids).post
        at = source_pos.clamp(max=source.ids.shape[1] - 1)
        for tv, sv in zip(variables, source_variables, strict=True):
            state[tv] = source_post[sv][rows, at].to(state[tv].dtype)
    swapped = dict(state)
    tokens, task_cont, ok, states = continue_from(causal_model, state, base, base_pos + 1, max_len)
    if ranges is not None:
        live = (tokens != causal_model.vocab.pad) & (tokens != causal_model.vocab.eos)
        active = torch.cat(
            [torch.ones(n, 1, dtype=torch.bool), live], 1
        )  # the intervened state, then each token's
        ok &= _within_ranges(states, ranges, active)
    ids, task_mask = _splice(base, base_pos, tokens, task_cont, stepwise, causal_model.vocab.pad)
    return ids, task_mask, ok, swapped


def make_pairs(
    task,
    causal_model: CausalModel,
    variable: str,
    n: int,
    generator: torch.Generator,
    *,
    split: str = "train",
    stepwise: bool = False,
    keep_extrapolation: bool = False,
    source_task=None,
    source_causal_model: CausalModel | None = None,
    source_variable: str | None = None,
    position: Position | None = None,
) -> CounterfactualPairs:
    """Draw ``n`` counterfactual pairs (vectorised; see the module docstring for the rule).

    ``position``: intervene there in every base and source sequence (indywise; None: positions drawn
    uniformly among the valid ones); a position that too few sequences have is a ConfigError.

    Base sequences come from ``split`` of ``task`` (``heldout``: the held-out counts); sources from the
    training counts of ``source_task`` (default: the same task). ``source_variable`` names the source's
    variable when the two causal models differ (``count`` into ``demo_count``): values move by position
    in the variable lists.
    """
    require_positive("n", n)
    source_task = source_task or task
    source_cm = source_causal_model or causal_model
    target_vars = swap_variables(causal_model, variable)
    source_vars = swap_variables(source_cm, source_variable or variable)
    if len(target_vars) != len(source_vars):
        raise ConfigError(
            "variables", variable, f"a variable with as many parts in both causal models ({source_variable})"
        )
    ranges = None if keep_extrapolation else training_ranges(task, causal_model)
    rule_max = int(task.rule(torch.tensor(task.max_count))) if hasattr(task, "rule") else 0
    max_len = 2 * (task.max_count + rule_max) + 8

    if position is not None and stepwise:
        raise ConfigError("position", position.spec, "null with stepwise pairs (every position up to one)")
    if split not in task.splits():
        raise ConfigError(
            "split", split, f"one of the splits of task {task.name}: {', '.join(task.splits())}"
        )
    check_position_occurs(source_task, source_cm, position)  # sources are training sequences
    if split == "train":
        check_position_occurs(task, causal_model, position)
    kept: list[CounterfactualPairs] = []
    total = drawn = 0
    for _attempt in range(20):
        want = int((n - total) * 1.3) + 16
        if position is not None and drawn:  # a fixed position: draw as many as its yield so far asks for
            want = min(int((n - total) * 1.2 * drawn / max(total, 1)) + 16, 50 * n + 16)
        drawn += want
        base = task.sample(want, generator, split=split)
        source = source_task.sample(want, generator, split="train")
        base_ok = valid_positions(base, causal_model)
        source_ok = valid_positions(source, source_cm)
        if position is not None:
            base_pos, base_in = fixed_positions(base, causal_model, position)
            source_pos, source_in = fixed_positions(source, source_cm, position)
            usable = base_in & source_in
        elif stepwise:
            length = max(base_ok.shape[1], source_ok.shape[1])
            both = _pad_to(base_ok, length, False) & _pad_to(source_ok, length, False)
            base_pos = _uniform_position(both | ~both.any(1, keepdim=True), generator)
            source_pos = base_pos
            usable = both.any(1)
        else:
            base_pos = _uniform_position(base_ok, generator)
            source_pos = _uniform_position(source_ok, generator)
            usable = torch.ones(want, dtype=torch.bool)
        ids, task_mask, ok, state = _counterfactual(
            causal_model,
            base,
            source,
            base_pos,
            source_pos,
            target_vars,
            source_causal_model=source_cm,
            source_variables=source_vars,
            stepwise=stepwise,
            ranges=ranges,
            max_len=max_len,
        )
        ok &= usable
        good = ok.nonzero().squeeze(1)
        if len(good):
            kept.append(
                CounterfactualPairs(
                    variable,
                    stepwise,
                    ids[good],
                    task_mask[good],
                    base_pos[good],
                    source_pos[good],
                    base[good],
                    source[good],
                    {k: v[good] for k, v in state.items()},
                )
            )
            total += len(good)
        if total >= n:
            return _concat(kept, n, task, causal_model.name, source_task, source_cm.name)
        if position is not None and not total and _attempt >= 2:
            break  # a position no sequence has: no more draws
    if position is not None:
        raise ConfigError(
            "position",
            position.spec,
            f"a position where the {split} sequences can be intervened on (never PAD, BOS, EOS or the "
            f"trigger): only {total} of {n} "
            f"{variable!r} pairs found at it in {drawn} draws",
        )
    raise ValueError(
        f"only {total} of {n} counterfactual pairs for {variable!r} are valid; the settings leave too few"
    )


def _splice(
    base: SequenceBatch, pos: Tensor, tokens: Tensor, task: Tensor, stepwise: bool, pad: int
) -> tuple[Tensor, Tensor]:
    """Base up to ``pos`` (inclusive), then the continuation, as right-padded (n, L) tensors."""
    lengths = pos + 1 + (tokens != pad).sum(1)
    length = int(lengths.max())
    col = torch.arange(length)[None, :]
    prefix = col <= pos[:, None]
    base_ids = _pad_to(base.ids, max(length, base.ids.shape[1]), pad)[:, :length]
    base_task = _pad_to(base.task_mask, max(length, base.ids.shape[1]), False)[:, :length]
    offset = (col - pos[:, None] - 1).clamp(0, tokens.shape[1] - 1)
    ids = torch.where(prefix, base_ids, tokens.gather(1, offset))
    ids = torch.where(col < lengths[:, None], ids, pad)
    task_mask = torch.where(prefix, base_task & (not stepwise), task.gather(1, offset)) & (
        col < lengths[:, None]
    )
    return ids, task_mask


def _concat(
    parts: list[CounterfactualPairs],
    n: int,
    task: Any,
    causal_model: str | None = None,
    source_task: Any = None,
    source_causal_model: str | None = None,
) -> CounterfactualPairs:
    length = max(p.ids.shape[1] for p in parts)
    first = parts[0]
    return CounterfactualPairs(
        first.variable,
        first.stepwise,
        torch.cat([_pad_to(p.ids, length, first.base.pad_id) for p in parts])[:n],
        torch.cat([_pad_to(p.task_mask, length, False) for p in parts])[:n],
        torch.cat([p.base_pos for p in parts])[:n],
        torch.cat([p.source_pos for p in parts])[:n],
        SequenceBatch.concat([p.base for p in parts])[torch.arange(n)],
        SequenceBatch.concat([p.source for p in parts])[torch.arange(n)],
        {k: torch.cat([p.state[k] for p in parts])[:n] for k in first.state},
        task,
        causal_model,
        source_task,
        source_causal_model,
    )
