"""Subspace layouts: which aligned coordinates belong to which causal variable.

Variable ``k`` owns one contiguous block of ``n_units`` coordinates, in the order the variables are
listed; the null subspace owns the remainder. With a width of 128 and 16 units for two variables::

    [ count: 0..15 | phase: 16..31 | null: 32..127 ]

:class:`FixedLayout` is the block layout; :class:`BoundlessLayout` learns each block's size with soft
sigmoid boundaries (Boundless DAS), annealing their temperature towards hard blocks.

A layout is built from ``conf/alignment/*.yaml``'s ``layout`` node with ``variables``, ``sizes``,
``code_width`` and ``n_aligned`` added; what the alignment search calls on it: :meth:`FixedLayout.mask`
(per variable), :meth:`~FixedLayout.penalty` (added to the loss), :meth:`~FixedLayout.on_train_step`
(before each training step) and :meth:`~FixedLayout.learned_sizes` (reported).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from alignsearch.errors import ConfigError

NULL = "null"


class FixedLayout(nn.Module):
    """Blocks of ``sizes[k]`` coordinates among the first ``n_aligned`` of a ``code_width``-wide code."""

    def __init__(self, variables: list[str], sizes: list[int], code_width: int, n_aligned: int) -> None:
        super().__init__()
        named = [v for v in variables if v != NULL]
        if len(sizes) != len(named):
            raise ConfigError("n_units", sizes, f"one size per variable ({len(named)})")
        for size in sizes:
            if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= n_aligned:
                raise ConfigError("n_units", size, f"an integer in [1, {n_aligned}] (the site's width)")
        if sum(sizes) > n_aligned:
            raise ConfigError(
                "n_units", sizes, f"sizes that add up to at most {n_aligned} (the site's width)"
            )
        if NULL in variables and sum(sizes) == code_width:
            raise ConfigError(
                "n_units", sizes, f"sizes that leave room for the null subspace (< {code_width} in all)"
            )
        self.variables, self.sizes, self.code_width = list(variables), list(sizes), code_width
        masks = torch.zeros(len(named) + 1, code_width)
        start = 0
        for k, size in enumerate(sizes):
            masks[k, start : start + size] = 1
            start += size
        masks[-1, start:] = 1
        self.masks: Tensor
        self.register_buffer("masks", masks, persistent=False)
        self._named = named

    def index(self, variable: str) -> int:
        return len(self._named) if variable == NULL else self._named.index(variable)

    def mask(self, variable: str) -> Tensor:
        """A (code_width,) 0/1 (or soft) mask of the variable's coordinates."""
        return self.masks[self.index(variable)]

    def penalty(self) -> Tensor:
        """A term added to the training loss (none here)."""
        return self.masks.new_zeros(())

    def on_train_step(self, step: int, max_steps: int) -> None:
        """Called before training step ``step`` (0-based) of at most ``max_steps``; nothing to do here."""

    def learned_sizes(self) -> dict[str, float]:
        """Each named variable's block size (learned ones are fractional)."""
        return dict(zip(self._named, map(float, self.sizes), strict=True))


class BoundlessLayout(FixedLayout):
    """Blocks whose sizes are learned: soft boundaries ``sigmoid((i - start) / T) * sigmoid((end - i) / T)``.

    The sizes start at ``sizes`` and are pulled towards small values by :meth:`penalty` (mean size over the
    width, weighted by ``size_weight``); :attr:`temperature` is annealed over training (at each step,
    :meth:`on_train_step`) from ``t_start`` to ``t_end``, where the masks are all but hard.
    """

    def __init__(
        self,
        variables: list[str],
        sizes: list[int],
        code_width: int,
        n_aligned: int,
        size_weight: float = 0.01,
        t_start: float = 1.0,
        t_end: float = 0.01,
    ) -> None:
        super().__init__(variables, sizes, code_width, n_aligned)
        self.log_sizes = nn.Parameter(torch.log(torch.tensor(sizes, dtype=torch.float)))
        self.size_weight, self.t_start, self.t_end = size_weight, t_start, t_end
        self.temperature = t_start
        self.coords: Tensor
        self.register_buffer("coords", torch.arange(code_width, dtype=torch.float) + 0.5, persistent=False)

    def set_progress(self, fraction: float) -> None:
        """Anneal the temperature geometrically: ``t_start`` at 0, ``t_end`` at 1."""
        fraction = min(max(fraction, 0.0), 1.0)
        self.temperature = self.t_start * (self.t_end / self.t_start) ** fraction

    def on_train_step(self, step: int, max_steps: int) -> None:
        """The temperature for ``step``: ``set_progress(step / max_steps)``."""
        self.set_progress(step / max(max_steps, 1))

    def mask(self, variable: str) -> Tensor:
        sizes = self.log_sizes.exp()
        ends = torch.cumsum(sizes, 0)
        starts = ends - sizes
        k = self.index(variable)
        t = self.temperature
        if k == len(sizes):  # the null subspace: everything after the last block
            return torch.sigmoid((self.coords - ends[-1]) / t)
        return torch.sigmoid((self.coords - starts[k]) / t) * torch.sigmoid((ends[k] - self.coords) / t)

    def penalty(self) -> Tensor:
        return self.size_weight * self.log_sizes.exp().sum() / self.code_width

    def learned_sizes(self) -> dict[str, float]:
        return dict(zip(self._named, self.log_sizes.exp().tolist(), strict=True))
