"""The interchange intervention in aligned coordinates.

For target activations ``h_t`` (model ``t``), source activations ``h_s`` (model ``s``) and the mask ``m``
of a variable's subspace::

    h_t' = f_t^{-1}( (1 - m) * f_t(h_t) + m * f_s(h_s) )

DAS is the case of one model (``s == t``); MAS gives every model its own function and a shared layout.
Codes of different widths are cropped or zero-padded to the target's width. With ``keep_target=False``
the target keeps nothing of its own (``h_t' = f_t^{-1}(m * f_s(h_s))``): model stitching.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from alignsearch.alignment.functions import AlignmentFunction
from alignsearch.alignment.layout import FixedLayout


class Interchange(nn.Module):
    """One alignment function per model and one subspace layout shared by all of them."""

    def __init__(
        self, functions: list[AlignmentFunction], layout: FixedLayout, keep_target: bool = True
    ) -> None:
        super().__init__()
        self.functions = nn.ModuleList(functions)
        self.layout = layout
        self.keep_target = keep_target

    def forward(
        self, h_target: Tensor, h_source: Tensor, variable: str, target: int = 0, source: int = 0
    ) -> Tensor:
        f_t, f_s = self.functions[target], self.functions[source]
        z_t, z_s = f_t(h_target), f_s(h_source)
        width = z_t.shape[-1]
        if z_s.shape[-1] != width:
            z_s = F.pad(z_s, (0, width - z_s.shape[-1])) if z_s.shape[-1] < width else z_s[..., :width]
        m = self.layout.mask(variable)[:width]
        if not self.keep_target:
            return f_t.inverse(m * z_s)
        return f_t.inverse(z_t + m * (z_s - z_t))
