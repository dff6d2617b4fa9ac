"""How far an intervention pushes a model off its natural states: the Earth Mover's Distance per feature.

After arXiv 2511.04638 ("Addressing divergent representations from causal interventions on neural
networks"): for each feature dimension ``j`` of a site, the 1-D Wasserstein distance between the values
the intervened runs put there and the values the model itself produces there, in units of the natural
values' spread (their standard deviation), averaged over dimensions. 0 means the intervened vectors look
like natural ones, feature by feature; 1 means they are, on average, a natural standard deviation away.

Finite samples are never at exactly 0, so every divergence comes with its *noise floor*: the same measure
between two disjoint halves of the natural vectors. To compare like with like, the divergence itself is
measured between the intervened vectors of one half of the pairs and the natural vectors of the other
half (the same sample sizes and the same reference set as the floor)::

    natural   (n, d): the target model's own states at the intervened positions (before the swap)
    intervened (n, d): the states the interchange put there
    halves a, b of the n rows (seeded)
    divergence       = mean_j W1(intervened[a, j], natural[b, j]) / std_j(natural)
    divergence_floor = mean_j W1(natural[a, j],    natural[b, j]) / std_j(natural)

A divergence near its floor: the intervention stays on the natural manifold, dimension by dimension.
"""

from __future__ import annotations

import torch
from torch import Tensor

MIN_SPREAD = 1e-6
"""Dimensions whose natural values spread less than this (constant features) are left out."""
MAX_ROWS = 8192
"""At most this many vectors are compared (a seeded sample beyond it)."""


def wasserstein_1d(a: Tensor, b: Tensor) -> Tensor:
    """The 1-D Earth Mover's Distance between the empirical distributions of the columns of ``a`` (n, d)
    and ``b`` (m, d), one value per column: the area between the two empirical quantile functions.

    >>> wasserstein_1d(torch.tensor([[0.0], [1.0]]), torch.tensor([[2.0], [3.0]]))
    tensor([2.])
    """
    a, b = a.float().sort(0).values, b.float().sort(0).values
    n, m = a.shape[0], b.shape[0]
    if n == m:
        return (a - b).abs().mean(0)
    # unequal sizes: integrate |F_a^-1(q) - F_b^-1(q)| over the merged quantile grid
    q = torch.cat([torch.arange(1, n + 1) / n, torch.arange(1, m + 1) / m]).double().unique().sort().values
    widths = torch.diff(torch.cat([q.new_zeros(1), q]))
    middle = q - widths / 2  # inside each interval, where both quantile functions are constant
    ia = torch.clamp(torch.floor(middle * n).long(), 0, n - 1)
    ib = torch.clamp(torch.floor(middle * m).long(), 0, m - 1)
    return ((a[ia] - b[ib]).abs() * widths[:, None].float()).sum(0)


def scaled_emd(a: Tensor, b: Tensor, spread: Tensor) -> float:
    """Mean over dimensions of ``W1(a_j, b_j) / spread_j``, leaving out dimensions without spread."""
    keep = spread > MIN_SPREAD
    if not keep.any():
        return 0.0
    return float((wasserstein_1d(a[:, keep], b[:, keep]) / spread[keep]).mean())


def divergence(natural: Tensor, intervened: Tensor, generator: torch.Generator) -> dict[str, float | None]:
    """``divergence`` and ``divergence_floor`` (see the module docstring) of the intervened vectors
    against the natural ones, both (n, d) with rows paired by pair; None with fewer than 4 rows."""
    if natural.shape[0] < 4:
        return {"divergence": None, "divergence_floor": None}
    order = torch.randperm(natural.shape[0], generator=generator)[:MAX_ROWS]
    natural, intervened = natural[order].float(), intervened[order].float()
    half = natural.shape[0] // 2
    spread = natural.std(0)
    return {
        "divergence": scaled_emd(intervened[:half], natural[half:], spread),
        "divergence_floor": scaled_emd(natural[:half], natural[half:], spread),
    }
