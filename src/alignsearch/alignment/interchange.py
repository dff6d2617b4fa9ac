"""The interchange intervention in aligned coordinates.

For target activations ``h_t`` (model ``t``), source activations ``h_s`` (model ``s``) and the mask ``m``
of a variable's subspace::

    h_t' = f_t^{-1}( (1 - m) * f_t(h_t) + m * f_s(h_s) )

DAS is the case of one model (``s == t``); MAS gives every model its own function and a shared layout.
Codes of different widths are cropped or zero-padded to the target's width. With ``keep_target=False``
the target keeps nothing of its own (``h_t' = f_t^{-1}(m * f_s(h_s))``): model stitching.

With ``match_scales=True`` (the MAS family) the models' scales are matched, in two steps. Each model's
activations are first standardized feature by feature from its natural states (:class:`Standardizer`),
and each model's aligned coordinates then get a learned scale and offset::

    code_t(h) = f_t((h - mean_t) / std_t) * exp(log_scale_t) + offset_t

An orthogonal map keeps lengths: without this, a variable that one model encodes in units of 0.6 and
another in units of 3.5 (an LSTM's unbounded cell state) cannot be carried from one into the other by
rotations. Within one model the learned scale and offset cancel exactly (they act on each coordinate
alike in the base and the source); across models they carry one model's values onto the other's scale.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from alignsearch.alignment.functions import AlignmentFunction
from alignsearch.alignment.layout import FixedLayout

MIN_STD = 1e-2
"""A feature's spread is at least this share of the mean spread of its site's features (a unit that
barely moves is not blown up)."""


class Standardizer(nn.Module):
    """``(h - mean) / std`` per feature and its inverse; the statistics are buffers, fitted once from a
    model's natural states (:meth:`fit`) and saved with the alignment.

    >>> s = Standardizer(2)
    >>> s.fit(torch.tensor([[0.0, 10.0], [2.0, 30.0]]))
    >>> s(torch.tensor([[2.0, 30.0]])).tolist(), s.inverse(torch.tensor([[1.0, 1.0]])).tolist()
    ([[0.7071067690849304, 0.7071067690849304]], [[2.4142136573791504, 34.14213562011719]])
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.mean: Tensor
        self.std: Tensor
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))

    @torch.no_grad()
    def fit(self, states: Tensor) -> None:
        """Take the mean and spread of each feature of ``states`` (n, width)."""
        states = states.float()
        std = states.std(0) if len(states) > 1 else torch.ones_like(states[0])
        self.mean.copy_(states.mean(0))
        self.std.copy_(std.clamp(min=MIN_STD * float(std.mean()) + 1e-12))

    def forward(self, h: Tensor) -> Tensor:
        return (h - self.mean) / self.std

    def inverse(self, x: Tensor) -> Tensor:
        return x * self.std + self.mean


class Interchange(nn.Module):
    """One alignment function per model and one subspace layout shared by all of them."""

    def __init__(
        self,
        functions: list[AlignmentFunction],
        layout: FixedLayout,
        keep_target: bool = True,
        match_scales: bool = False,
    ) -> None:
        super().__init__()
        self.functions = nn.ModuleList(functions)
        self.layout = layout
        self.keep_target = keep_target
        self.match_scales = match_scales
        if match_scales:
            width = max(f.code_width for f in functions)
            self.standardizers = nn.ModuleList(Standardizer(f.width) for f in functions)
            self.log_scales = nn.Parameter(torch.zeros(len(functions), width))
            self.offsets = nn.Parameter(torch.zeros(len(functions), width))

    def code(self, h: Tensor, model: int) -> Tensor:
        """Model ``model``'s activations in aligned coordinates."""
        if not self.match_scales:
            return self.functions[model](h)
        z = self.functions[model](self.standardizers[model](h))
        width = z.shape[-1]
        return z * self.log_scales[model, :width].exp() + self.offsets[model, :width]

    def decode(self, z: Tensor, model: int) -> Tensor:
        """Aligned coordinates back to model ``model``'s activations."""
        if not self.match_scales:
            return self._function(model).inverse(z)
        width = z.shape[-1]
        z = (z - self.offsets[model, :width]) / self.log_scales[model, :width].exp()
        return self._standardizer(model).inverse(self._function(model).inverse(z))

    def _function(self, model: int) -> AlignmentFunction:
        return cast(AlignmentFunction, self.functions[model])

    def _standardizer(self, model: int) -> Standardizer:
        return cast(Standardizer, self.standardizers[model])

    def fit_standardizers(self, natural: list[Tensor | None]) -> None:
        """Fit each model's :class:`Standardizer` to its natural states (n, width); nothing to do
        without ``match_scales``."""
        if not self.match_scales:
            return
        for standardizer, states in zip(self.standardizers, natural, strict=True):
            if states is not None:
                assert isinstance(standardizer, Standardizer)
                standardizer.fit(states.to(standardizer.mean.device))

    def forward(
        self, h_target: Tensor, h_source: Tensor, variable: str, target: int = 0, source: int = 0
    ) -> Tensor:
        z_t, z_s = self.code(h_target, target), self.code(h_source, source)
        width = z_t.shape[-1]
        if z_s.shape[-1] != width:
            z_s = F.pad(z_s, (0, width - z_s.shape[-1])) if z_s.shape[-1] < width else z_s[..., :width]
        m = self.layout.mask(variable)[:width]
        if not self.keep_target:
            return self.decode(m * z_s, target)
        return self.decode(z_t + m * (z_s - z_t), target)
