"""What a task provides: the :class:`Task` protocol (and :class:`CountTask`, what counterfactual pairs read).

A task is any object with these members; it needs no base class. Training, the zoo and the command
line read only :class:`Task`; counterfactual pairs, causal models and the similarity baselines also read
the generative count of :class:`CountTask`. A config builds it from its ``_target_``
(``conf/task/<name>.yaml``, whose stem is the task's :attr:`~Task.name`).

A tiny example: ``n`` marks ``X``, then ``=``, then ``n`` answers ``Y`` and the end (``n`` in 1..5)::

    import torch
    from alignsearch.configurable import Configurable
    from alignsearch.tasks import SequenceBatch, Vocabulary

    class Echo(Configurable):  # Configurable: settings() are the constructor's arguments
        name = "echo"
        naming_keys = ()

        def __init__(self, max_count: int = 5) -> None:
            self.min_count, self.max_count = 1, max_count
            self.train_counts = torch.arange(1, max_count + 1)
            self.vocab = Vocabulary(("P", "B", "E", "X", "Y", "="), demo=(3,), response=(4,), trigger=5)

        def splits(self):
            return ("train",)

        def sample(self, n, generator=None, *, split="train", counts=None):
            if counts is None:
                counts = self.train_counts[torch.randint(len(self.train_counts), (n,), generator=generator)]
            rows = [["B", *"X" * c, "=", *"Y" * c, "E"] for c in counts.tolist()]
            length = max(map(len, rows))
            ids = torch.tensor([[self.vocab.id(t) for t in r] + [0] * (length - len(r)) for r in rows])
            task_mask = torch.tensor([[0] * (c + 2) + [1] * (c + 1) + [0] * (length - 2 * c - 3)
                                      for c in counts.tolist()]).bool()
            return SequenceBatch(ids, task_mask, {"obj_count": counts}, self.vocab.pad)

``isinstance(task, Task)`` checks that the members are there (not their types or meaning: the task tests
build every ``conf/task`` choice and check those).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from alignsearch.tasks.batch import SequenceBatch
from alignsearch.tasks.vocab import Vocabulary

SPLITS = ("train", "heldout")
"""The splits a task may offer: ``train`` (always) and ``heldout`` (sequences of counts never trained on)."""


@runtime_checkable
class Task(Protocol):
    """A family of token sequences a task model learns, each with the tokens it must get right."""

    name: str
    """The task's name: its zoo folder (``zoo/<name>/...``), the stem of its ``conf/task`` YAML, and how
    messages refer to it. Settings that are part of it are listed in :attr:`naming_keys`."""

    vocab: Vocabulary
    """Token strings and their roles (PAD, BOS and EOS always; demo, response and trigger where the task
    has them). The models' vocabulary size is ``vocab.size``; zoo entries record ``vocab.tokens``."""

    naming_keys: tuple[str, ...]
    """Settings already in :attr:`name` (``("objects", "response")`` for ``sameobject_mod``): left out
    of zoo entry names, which add every other setting that differs from the constructor's default."""

    def settings(self) -> dict[str, Any]:
        """The constructor arguments that define the task (by name): together with the seed and the
        model they name its zoo entries. Inherit :class:`~alignsearch.configurable.Configurable` to
        have them recorded from the constructor call."""
        ...

    def splits(self) -> tuple[str, ...]:
        """The splits :meth:`sample` draws from: ``("train",)`` or ``("train", "heldout")`` (:data:`SPLITS`).
        Training evaluates each (``train`` as ``val``); alignment evaluates ``heldout`` pairs when every
        aligned model's task has it."""
        ...

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        split: str = "train",
        counts: Tensor | None = None,
    ) -> SequenceBatch:
        """``n`` sequences drawn from ``generator`` alone (the same generator state, the same batch).

        ``ids`` (n, length) start with BOS and end with EOS, right-padded with PAD; ``task_mask`` is True
        at the tokens a model must predict (what the task's program decides, never a random draw);
        ``variables`` hold each sequence's generative values (``obj_count``). ``counts`` (n,), if given,
        fixes each sequence's generative count (the number the task is about) instead of drawing it.
        """
        ...


@runtime_checkable
class CountTask(Task, Protocol):
    """A task whose sequences are generated from one count; what counterfactual pairs read besides
    :class:`Task` (the range of a causal variable on training sequences, a bound on continuations) and
    what the similarity baselines match inputs on.

    A task may also have ``rule`` (count -> number of responses, as in
    :func:`~alignsearch.tasks.rules.response_rule`): causal models that apply a rule read it, and it
    bounds the length of a counterfactual continuation (``2 * (max_count + rule(max_count)) + 8``).
    """

    min_count: int
    """The smallest count :meth:`~Task.sample` draws."""
    max_count: int
    """The largest count :meth:`~Task.sample` draws."""
    train_counts: Tensor
    """The counts of the ``train`` split (1-d, long)."""
