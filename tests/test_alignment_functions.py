"""Alignment functions are exactly invertible; self-swaps and empty masks change nothing."""

from __future__ import annotations

import pytest
import torch

from alignsearch.alignment import (
    FCA,
    BoundlessLayout,
    FixedLayout,
    Interchange,
    InvertibleLinear,
    RevRes,
    Rotation,
    gram_schmidt,
)
from alignsearch.errors import ConfigError

WIDTH = 24


def functions():
    torch.manual_seed(0)
    revres = RevRes(WIDTH)
    for p in revres.parameters():  # leave the identity initialisation, so the couplings do something
        torch.nn.init.normal_(p, std=0.3)
    return {"das": Rotation(WIDTH), "linear": InvertibleLinear(WIDTH), "revres": revres, "fca": FCA(WIDTH, 6)}


@pytest.mark.parametrize("name", ["das", "linear", "revres", "fca"])
def test_inverse_undoes_forward(name: str) -> None:
    f = functions()[name]
    h = torch.randn(50, WIDTH) * 3
    z = f(h)
    assert z.shape == (50, f.code_width)
    torch.testing.assert_close(f.inverse(z), h, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["das", "linear", "revres", "fca"])
def test_swapping_a_run_with_itself_and_empty_masks_are_identities(name: str) -> None:
    f = functions()[name]
    layout = FixedLayout(["count", "phase", "null"], [4, 2], f.code_width, f.n_aligned)
    interchange = Interchange([f], layout)
    h, other = torch.randn(40, WIDTH), torch.randn(40, WIDTH)
    for variable in ("count", "phase", "null"):
        torch.testing.assert_close(interchange(h, h, variable), h, rtol=1e-4, atol=1e-4)
    layout.masks.zero_()
    torch.testing.assert_close(interchange(h, other, "count"), h, rtol=1e-4, atol=1e-4)


def test_full_mask_takes_the_source() -> None:
    f = Rotation(WIDTH)
    interchange = Interchange([f], FixedLayout(["full"], [WIDTH], WIDTH, WIDTH))
    h, other = torch.randn(10, WIDTH), torch.randn(10, WIDTH)
    torch.testing.assert_close(interchange(h, other, "full"), other, rtol=1e-4, atol=1e-4)


def test_rotation_swap_matches_the_das_formula() -> None:
    f = Rotation(WIDTH)
    interchange = Interchange([f], FixedLayout(["count"], [5], WIDTH, WIDTH))
    h_t, h_s = torch.randn(8, WIDTH), torch.randn(8, WIDTH)
    q = f.matrix
    expected = torch.cat([(h_s @ q)[:, :5], (h_t @ q)[:, 5:]], 1) @ q.T
    torch.testing.assert_close(interchange(h_t, h_s, "count"), expected)
    torch.testing.assert_close(q @ q.T, torch.eye(WIDTH), rtol=1e-5, atol=1e-5)


def test_fca_swap_is_the_low_rank_interchange() -> None:
    f = FCA(WIDTH, 4)
    interchange = Interchange([f], FixedLayout(["count"], [4], f.code_width, f.n_aligned))
    h_t, h_s = torch.randn(8, WIDTH), torch.randn(8, WIDTH)
    w = f.basis
    torch.testing.assert_close(
        interchange(h_t, h_s, "count"), h_t + (h_s @ w.T - h_t @ w.T) @ w, rtol=1e-4, atol=1e-5
    )
    torch.testing.assert_close(w @ w.T, torch.eye(4), rtol=1e-5, atol=1e-5)


def test_gram_schmidt_matches_the_textbook_loop() -> None:
    v = torch.randn(5, 9, dtype=torch.float64)
    basis = []
    for row in v:
        for b in basis:
            row = row - (row @ b) * b
        basis.append(row / row.norm())
    torch.testing.assert_close(gram_schmidt(v), torch.stack(basis))


def test_boundless_masks_harden_as_the_temperature_falls() -> None:
    layout = BoundlessLayout(["count", "null"], [6], WIDTH, WIDTH, t_start=1.0, t_end=0.001)
    soft = layout.mask("count")
    assert 0.2 < float(soft[6]) < 0.8  # the boundary is soft at first
    layout.set_progress(1.0)
    hard = layout.mask("count")
    expected = torch.zeros(WIDTH)
    expected[:6] = 1
    torch.testing.assert_close(hard, expected, atol=1e-3, rtol=0)
    torch.testing.assert_close(layout.mask("null"), 1 - expected, atol=1e-3, rtol=0)
    assert layout.learned_sizes() == {"count": pytest.approx(6.0)}
    assert float(layout.penalty()) > 0


@pytest.mark.parametrize(
    ("variables", "sizes", "fragment"),
    [
        (["count"], [0], "n_units=0 is not allowed: expected an integer in [1, 24]"),
        (["count"], [25], "n_units=25"),
        (["count", "phase"], [16, 16], "add up to at most 24"),
        (["count", "null"], [24], "leave room for the null subspace"),
    ],
)
def test_layout_errors(variables, sizes, fragment) -> None:
    with pytest.raises(ConfigError) as err:
        FixedLayout(variables, sizes, WIDTH, WIDTH)
    assert fragment in str(err.value)
