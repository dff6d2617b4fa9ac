"""Alignment functions: invertible maps from a site's activations ``h`` to aligned coordinates ``z``.

Every function has ``forward(h) -> z`` and ``inverse(z) -> h`` with ``inverse(forward(h)) == h``. Causal
variables live in contiguous blocks of ``z`` (see :mod:`alignsearch.alignment.layout`).

* :class:`Rotation` (``das``): an orthogonal matrix, through torch's orthogonal parametrization.
* :class:`InvertibleLinear` (``linear``): any invertible matrix plus a bias (the Linear Alignment Function).
* :class:`RevRes` (``revres``): reversible residual coupling blocks, then a rotation.
* :class:`FCA` (``fca``): a low-rank orthonormal basis (differentiable Gram-Schmidt); ``z`` holds the
  basis coordinates followed by the residual outside the basis, so the map stays exactly invertible.
* :class:`LowRankRotation` (``das_lowrank``): the columns of a rotation that hold the variables only, a
  (width x rank) matrix with orthonormal columns through torch's orthogonal parametrization; ``z`` as in
  FCA. DAS without a width x width matrix: on a 2048-wide site with 16 units, 2048 x 16 numbers.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import orthogonal

from alignsearch.errors import ConfigError, require_positive


class AlignmentFunction(nn.Module):
    """``width``: size of ``h``; ``code_width``: size of ``z``; ``n_aligned``: leading coordinates of ``z``
    that can hold variables (the rest only ever belongs to the null subspace)."""

    width: int

    @property
    def code_width(self) -> int:
        return self.width

    @property
    def n_aligned(self) -> int:
        return self.width

    def inverse(self, z: Tensor) -> Tensor:
        raise NotImplementedError


class Rotation(AlignmentFunction):
    """``z = h Q`` with ``Q`` orthogonal (initialised at random); ``h = z Q^T``."""

    def __init__(self, width: int, orthogonal_map: str | None = None) -> None:
        super().__init__()
        self.width = require_positive("width", width)
        # orthogonal returns the Linear it is given, its weight parametrized
        self.rotate = cast(
            nn.Linear, orthogonal(nn.Linear(width, width, bias=False), orthogonal_map=orthogonal_map)
        )

    @property
    def matrix(self) -> Tensor:
        return self.rotate.weight

    def forward(self, h: Tensor) -> Tensor:
        return h @ self.matrix

    def inverse(self, z: Tensor) -> Tensor:
        return z @ self.matrix.T


class InvertibleLinear(AlignmentFunction):
    """``z = h W + b`` with ``W`` any invertible matrix (initialised orthogonal); ``h = (z - b) W^{-1}``."""

    def __init__(self, width: int, bias: bool = True) -> None:
        super().__init__()
        self.width = require_positive("width", width)
        self.weight = nn.Parameter(nn.init.orthogonal_(torch.empty(width, width)))
        self.bias = nn.Parameter(torch.zeros(width)) if bias else None

    def forward(self, h: Tensor) -> Tensor:
        z = h @ self.weight
        return z if self.bias is None else z + self.bias

    def inverse(self, z: Tensor) -> Tensor:
        if self.bias is not None:
            z = z - self.bias
        return z @ torch.linalg.inv(self.weight)


class Coupling(nn.Module):
    """Additive coupling on the halves ``(a, b)``: ``a' = a + F(b)``, ``b' = b + G(a')``. Exactly invertible."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.split = width // 2
        rest = width - self.split
        self.f = nn.Sequential(nn.Linear(rest, hidden), nn.Tanh(), nn.Linear(hidden, self.split))
        self.g = nn.Sequential(nn.Linear(self.split, hidden), nn.Tanh(), nn.Linear(hidden, rest))
        for last in (self.f[-1], self.g[-1]):  # start as the identity
            assert isinstance(last, nn.Linear)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward(self, h: Tensor) -> Tensor:
        a, b = h[..., : self.split], h[..., self.split :]
        a = a + self.f(b)
        return torch.cat([a, b + self.g(a)], -1)

    def inverse(self, y: Tensor) -> Tensor:
        a, b = y[..., : self.split], y[..., self.split :]
        b = b - self.g(a)
        return torch.cat([a - self.f(b), b], -1)


class RevRes(AlignmentFunction):
    """``n_blocks`` reversible residual couplings (identity at initialisation), then a :class:`Rotation`."""

    def __init__(self, width: int, n_blocks: int = 3, hidden_mult: int = 1) -> None:
        super().__init__()
        self.width = require_positive("width", width)
        if width < 2:
            raise ConfigError("width", width, "at least 2 units for reversible couplings")
        require_positive("n_blocks", n_blocks)
        require_positive("hidden_mult", hidden_mult)
        self.blocks = nn.ModuleList(Coupling(width, hidden_mult * width) for _ in range(n_blocks))
        self.rotation = Rotation(width)

    def forward(self, h: Tensor) -> Tensor:
        for block in self.blocks:
            h = block(h)
        return self.rotation(h)

    def inverse(self, z: Tensor) -> Tensor:
        h = self.rotation.inverse(z)
        for block in reversed(self.blocks):
            h = cast(Coupling, block).inverse(h)
        return h


def gram_schmidt(vectors: Tensor) -> Tensor:
    """Orthonormalise the rows of ``vectors`` in order (classical Gram-Schmidt, computed through QR).

    Row ``k`` of the result is row ``k`` minus its projections on the rows before it, normalised.
    """
    q, r = torch.linalg.qr(vectors.T)
    signs = torch.sign(torch.diagonal(r))
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return (q * signs).T


def check_rank(rank: int, width: int) -> int:
    """``rank`` if it is an integer in ``[1, width]``, else a one-line ConfigError."""
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= width:
        raise ConfigError("rank", rank, f"an integer in [1, {width}] (the site's width)")
    return rank


class LowRankFunction(AlignmentFunction):
    """``z = [h U, h - h U U^T]`` for ``U`` (width x rank) with orthonormal columns: the ``rank``
    coordinates along ``U``, then the residual outside them (``width`` more numbers), so the map stays
    exactly invertible: ``inverse(z) = z[:rank] U^T + z[rank:]``. A subclass says what ``U`` is
    (:meth:`projection`)."""

    rank: int

    def projection(self) -> Tensor:
        """``U``: (width, rank), orthonormal columns."""
        raise NotImplementedError

    @property
    def code_width(self) -> int:
        return self.rank + self.width

    @property
    def n_aligned(self) -> int:
        return self.rank

    def forward(self, h: Tensor) -> Tensor:
        u = self.projection()
        coords = h @ u
        return torch.cat([coords, h - coords @ u.T], -1)

    def inverse(self, z: Tensor) -> Tensor:
        return z[..., : self.rank] @ self.projection().T + z[..., self.rank :]


class FCA(LowRankFunction):
    """Functional Component Analysis: an orthonormal basis ``W`` (rank x width) of learned directions.

    ``z = [h W^T, h - h W^T W]``: the ``rank`` basis coordinates, then the residual outside the basis
    (``width`` more numbers); ``inverse(z) = z[:rank] W + z[rank:]``. Swapping basis coordinates is the
    classic low-rank interchange ``h_t + (h_s W^T - h_t W^T) W``.
    """

    def __init__(self, width: int, rank: int) -> None:
        super().__init__()
        self.width = require_positive("width", width)
        self.rank = check_rank(rank, width)
        self.vectors = nn.Parameter(torch.randn(rank, width) / width**0.5)

    @property
    def basis(self) -> Tensor:
        return gram_schmidt(self.vectors)

    def projection(self) -> Tensor:
        return self.basis.T


class LowRankRotation(LowRankFunction):
    """The first ``rank`` columns of a rotation: ``U`` (width x rank) with orthonormal columns, learned through
    torch's orthogonal parametrization of a non-square matrix (Householder reflections by default), so no
    width x width matrix is ever formed.

    ``z = [h U, h - h U U^T]``: the ``rank`` coordinates a :class:`Rotation` would put first, then the
    residual outside them (``width`` more numbers); ``inverse(z) = z[:rank] U^T + z[rank:]``, exact. A swap
    of the first ``k`` coordinates is DAS's ``h_t + (h_s - h_t) U_k U_k^T``. ``rank`` defaults to the units
    of all variables (:func:`~alignsearch.search.spec.build_function`)::

        f = LowRankRotation(2048, 16)   # 32768 numbers to learn, against 4 million for Rotation(2048)
        f(h).shape                      # (..., 16 + 2048)
    """

    def __init__(self, width: int, rank: int, orthogonal_map: str | None = None) -> None:
        super().__init__()
        self.width = require_positive("width", width)
        self.rank = check_rank(rank, width)
        self.columns = cast(
            nn.Linear, orthogonal(nn.Linear(rank, width, bias=False), orthogonal_map=orthogonal_map)
        )

    @property
    def basis(self) -> Tensor:
        """``U``: (width, rank), orthonormal columns."""
        return self.columns.weight

    def projection(self) -> Tensor:
        return self.basis
