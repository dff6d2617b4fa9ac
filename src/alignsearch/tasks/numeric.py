"""Numeric-equivalence tasks: show ``n`` objects, then answer with ``n`` (or a function of ``n``) responses.

A MultiObject sequence with 3 objects (ids from :func:`numeric_vocabulary`)::

    B  D2 D0 D0 T  R  R  R  E
    0  0  0  0  0  1  1  1  1     <- task mask: responses and EOS are the task tokens

The demonstration (the demo tokens and where the trigger falls) is random and cannot be predicted; the
responses and the EOS follow from the count and are what a model must get right. With ``unk_p > 0``
each demo token and the trigger is preceded by a geometric number of void tokens ``U``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from alignsearch.configurable import Configurable
from alignsearch.errors import ConfigError, require_positive, require_probability
from alignsearch.tasks.batch import SequenceBatch
from alignsearch.tasks.rules import RULES, response_rule
from alignsearch.tasks.vocab import OBJECT_KINDS, numeric_vocabulary

SPLITS = ("train", "heldout")


MAX_COUNT = 1000
"""The largest count a task may show (a sequence of 2 * 1000 + 3 tokens; the papers use 20)."""


class NumericTask(Configurable):
    """A numeric-equivalence task: which objects, which response rule, which counts.

    Args:
        objects: ``multi`` (MultiObject), ``single`` (SingleObject) or ``same`` (SameObject).
        response: the response rule: ``identity``, ``mod``, ``square`` or ``round``.
        min_count, max_count: the range of object counts.
        hold_outs: counts never sampled for training (the ``heldout`` split samples only these).
        unk_p: probability of a void token before each demo token and before the trigger.
        modulus, round_to: parameters of the ``mod`` and ``round`` rules.

    ``settings()`` are these arguments as given (:class:`~alignsearch.configurable.Configurable`), with
    ``hold_outs`` sorted.
    """

    settings_canonical = {"hold_outs": lambda h: sorted(set(h)), "unk_p": float}
    naming_keys = ("objects", "response")  # already part of ``name``

    def __init__(
        self,
        objects: str = "multi",
        response: str = "identity",
        min_count: int = 1,
        max_count: int = 20,
        hold_outs: tuple[int, ...] | list[int] = (4, 9, 14, 17),
        unk_p: float = 0.0,
        modulus: int = 4,
        round_to: int = 3,
    ) -> None:
        if objects not in OBJECT_KINDS:
            raise ConfigError("objects", objects, f"one of {', '.join(OBJECT_KINDS)}")
        if response not in RULES:
            raise ConfigError("response", response, f"one of {', '.join(RULES)}")
        require_positive("min_count", min_count)
        require_positive("max_count", max_count, at_most=MAX_COUNT)
        if min_count > max_count:
            raise ConfigError("min_count", min_count, f"an integer <= max_count ({max_count})")
        require_probability("unk_p", unk_p)
        require_positive("modulus", modulus)
        require_positive("round_to", round_to)
        if not all(isinstance(h, int) and not isinstance(h, bool) for h in hold_outs):
            raise ConfigError("hold_outs", list(hold_outs), "a list of counts (integers)")
        outside = [h for h in hold_outs if not min_count <= h <= max_count]
        if outside:
            raise ConfigError(
                "hold_outs", list(hold_outs), f"counts in [{min_count}, {max_count}] (min_count, max_count)"
            )
        hold_outs = tuple(sorted(set(hold_outs)))
        counts = [c for c in range(min_count, max_count + 1) if c not in hold_outs]
        if not counts:
            raise ConfigError(
                "hold_outs",
                list(hold_outs),
                f"a set that leaves a training count in [{min_count}, {max_count}]",
            )
        self.objects, self.response = objects, response
        self.min_count, self.max_count, self.hold_outs = min_count, max_count, hold_outs
        self.unk_p, self.modulus, self.round_to = float(unk_p), modulus, round_to
        self.vocab = numeric_vocabulary(objects, void=unk_p > 0)
        self.rule = response_rule(response, modulus=modulus, round_to=round_to)
        self.train_counts = torch.tensor(counts)
        self.heldout_counts = torch.tensor(
            [h for h in hold_outs if min_count <= h <= max_count], dtype=torch.long
        )

    # -- identity -------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """``multiobject``, ``sameobject_mod``, ...: the family and its rule."""
        return f"{self.objects}object" + ("" if self.response == "identity" else f"_{self.response}")

    def splits(self) -> tuple[str, ...]:
        """The splits this task can sample: ``train`` always, ``heldout`` when some count is held out."""
        return SPLITS if len(self.heldout_counts) else SPLITS[:1]

    # -- sampling -------------------------------------------------------------------------------------------
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        split: str = "train",
        counts: Tensor | None = None,
    ) -> SequenceBatch:
        """Draw ``n`` sequences at once (vectorised, reproducible from ``generator``).

        Counts are uniform over the split's counts (``train``: every count but the hold-outs; ``heldout``:
        the hold-outs) unless ``counts`` gives one per sequence.
        """
        if counts is None:
            pool = {"train": self.train_counts, "heldout": self.heldout_counts}[split]
            if len(pool) == 0:
                raise ValueError(f"the {split!r} split of {self.name} has no counts")
            counts = pool[torch.randint(len(pool), (n,), generator=generator)]
        counts = counts.long()
        if self.unk_p > 0:
            ids, task_mask = self._layout(counts, self._voids(counts, generator))
        else:  # every sequence of a count has the same layout: copy it from a template
            if self._templates is None:
                every = torch.arange(self.max_count + 1)
                self._templates = self._layout(
                    every, torch.zeros(len(every), self.max_count + 1, dtype=torch.long)
                )
            lengths = self._template_lengths[counts]
            length = int(lengths.max())
            ids = self._templates[0][counts, :length]
            task_mask = self._templates[1][counts, :length]
        width = min(ids.shape[1] - 1, self.max_count if self.unk_p == 0 else ids.shape[1])
        window = ids[:, 1 : width + 1]
        demos = torch.tensor(self.vocab.demo)[
            torch.randint(len(self.vocab.demo), window.shape, generator=generator)
        ]
        ids[:, 1 : width + 1] = torch.where(window == _DEMO_SLOT, demos, window)
        return SequenceBatch(ids, task_mask, {"obj_count": counts}, self.vocab.pad)

    _templates: tuple[Tensor, Tensor] | None = None

    @property
    def _template_lengths(self) -> Tensor:
        assert self._templates is not None  # built before it is read
        return (self._templates[0] != self.vocab.pad).sum(1)

    def _voids(self, counts: Tensor, generator: torch.Generator | None) -> Tensor:
        """Void tokens before each slot (demo or trigger): geometric, P(k) = unk_p^k (1 - unk_p)."""
        u = torch.rand(counts.shape[0], self.max_count + 1, generator=generator)
        voids = torch.floor(
            torch.log(u.clamp_min(torch.finfo(u.dtype).tiny)) / torch.log(torch.tensor(self.unk_p))
        )
        return voids.long().masked_fill(torch.arange(self.max_count + 1) > counts[:, None], 0)

    def _layout(self, counts: Tensor, voids: Tensor) -> tuple[Tensor, Tensor]:
        """Ids and task mask for the given counts and voids, with demo positions left as ``_DEMO_SLOT``."""
        v = self.vocab
        assert v.trigger is not None  # a numeric task's vocabulary has one
        n = counts.shape[0]
        slot = torch.arange(self.max_count + 1)  # up to max_count demos, then the trigger
        slot_pos = torch.cumsum(voids + 1, dim=1)  # position of slot j's token (BOS at 0)
        trigger_pos = slot_pos.gather(1, counts[:, None]).squeeze(1)
        eos_pos = trigger_pos + self.rule(counts) + 1
        length = int(eos_pos.max()) + 1
        pos = torch.arange(length)[None, :]
        ids = torch.full((n, length + 1), v.pad, dtype=torch.long)  # one spill column for unused slots
        ids[:, 0] = v.bos
        if v.void is not None:
            ids[:, :length].masked_fill_((pos >= 1) & (pos < trigger_pos[:, None]), v.void)
        slot_tokens = torch.where(slot[None, :] == counts[:, None], v.trigger, _DEMO_SLOT)
        ids.scatter_(1, torch.where(slot[None, :] <= counts[:, None], slot_pos, length), slot_tokens)
        ids = ids[:, :length]
        ids.masked_fill_((pos > trigger_pos[:, None]) & (pos < eos_pos[:, None]), v.response[0])
        ids.masked_fill_(pos == eos_pos[:, None], v.eos)
        task_mask = (pos > trigger_pos[:, None]) & (pos <= eos_pos[:, None])
        return ids, task_mask


_DEMO_SLOT = -1  # placeholder for a demo token until one is drawn
