"""Response rules: how many responses a count of ``n`` demonstrated objects asks for.

The rule is applied when the trigger arrives, both by the task that generates sequences and by the
causal models that read them, so it lives here once.

>>> rule = response_rule("round", round_to=3)
>>> rule(torch.tensor([1, 2, 4, 5, 20])).tolist()
[0, 3, 3, 6, 21]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from alignsearch.errors import ConfigError

RULES = ("identity", "mod", "square", "round")

Rule = Callable[[Tensor], Tensor]


def response_rule(name: str, *, modulus: int = 4, round_to: int = 3) -> Rule:
    """The response count for a demonstrated count.

    ``identity``: n; ``mod``: n mod ``modulus``; ``square``: n**2; ``round``: n rounded to the nearest
    multiple of ``round_to`` (halves round up).
    """
    if name == "identity":
        return lambda n: n
    if name == "mod":
        return lambda n: torch.remainder(n, modulus)
    if name == "square":
        return lambda n: n * n
    if name == "round":
        return lambda n: torch.div(n + round_to // 2, round_to, rounding_mode="floor") * round_to
    raise ConfigError("response", name, f"one of {', '.join(RULES)}")
