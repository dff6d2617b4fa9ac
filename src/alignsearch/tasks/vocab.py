"""Token vocabularies: the only place where token ids are decided.

Every id used anywhere else comes from a :class:`Vocabulary` instance.

>>> v = numeric_vocabulary("multi")
>>> v.tokens
('P', 'B', 'E', 'D0', 'D1', 'D2', 'R', 'T')
>>> v.decode(v.encode("B D2 D0 T R R E"))
'B D2 D0 T R R E'
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

PAD, BOS, EOS = "P", "B", "E"
TRIGGER, VOID = "T", "U"

OBJECT_KINDS = ("multi", "single", "same")


@dataclass(frozen=True)
class Vocabulary:
    """Token strings and the roles of their ids.

    ``demo`` are the tokens that show objects, ``response`` those that answer, ``trigger`` ends the
    demonstration, ``void`` (optional) is a meaningless filler token of the demonstration phase.
    Task families without these roles (arithmetic) leave them empty.
    """

    tokens: tuple[str, ...]
    demo: tuple[int, ...] = ()
    response: tuple[int, ...] = ()
    trigger: int | None = None
    void: int | None = None

    @property
    def pad(self) -> int:
        return self.id(PAD)

    @property
    def bos(self) -> int:
        return self.id(BOS)

    @property
    def eos(self) -> int:
        return self.id(EOS)

    @property
    def size(self) -> int:
        return len(self.tokens)

    def id(self, token: str) -> int:
        try:
            return self.tokens.index(token)
        except ValueError:
            raise KeyError(f"token {token!r} is not in the vocabulary {self.tokens}") from None

    def encode(self, text: str) -> Tensor:
        """Space-separated tokens to a 1-d id tensor."""
        return torch.tensor([self.id(t) for t in text.split()], dtype=torch.long)

    def decode(self, ids: Tensor | list[int], *, strip_pad: bool = True) -> str:
        """Ids to space-separated tokens (trailing padding dropped unless ``strip_pad=False``)."""
        ids = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        if strip_pad:
            while ids and ids[-1] == self.pad:
                ids.pop()
        return " ".join(self.tokens[i] for i in ids)


def numeric_vocabulary(objects: str, *, void: bool = False) -> Vocabulary:
    """The vocabulary of a numeric-equivalence task.

    ``multi``: three demo tokens ``D0 D1 D2`` and the response ``R``; ``single``: one demo ``D`` and ``R``;
    ``same``: the response is the demo token ``D`` itself. ``void=True`` adds the filler ``U``.
    """
    demos = {"multi": ["D0", "D1", "D2"], "single": ["D"], "same": ["D"]}[objects]
    responses = ["D"] if objects == "same" else ["R"]
    tokens = [PAD, BOS, EOS, *demos, *[r for r in responses if r not in demos], TRIGGER]
    if void:
        tokens.append(VOID)
    return Vocabulary(
        tokens=tuple(tokens),
        demo=tuple(tokens.index(d) for d in demos),
        response=tuple(tokens.index(r) for r in responses),
        trigger=tokens.index(TRIGGER),
        void=tokens.index(VOID) if void else None,
    )
