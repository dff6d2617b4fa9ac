"""Alignment functions are exactly invertible; self-swaps and empty masks change nothing.

The contract tests run on the function and layout of every ``conf/alignment`` choice, so a new
alignment YAML is tested by adding it.
"""

from __future__ import annotations

import functools

import pytest
import torch

from alignsearch.alignment import (
    FCA,
    BoundlessLayout,
    FixedLayout,
    Interchange,
    Rotation,
    gram_schmidt,
)
from alignsearch.components import instantiate_checked
from alignsearch.errors import ConfigError
from alignsearch.search.spec import build_function
from tests.helpers import CONF, compose_config

WIDTH = 24
VARIABLES, SIZES = ["count", "phase", "null"], [4, 2]
ALIGNMENTS = sorted(p.stem for p in (CONF / "alignment").glob("*.yaml"))


@functools.cache
def alignment_config(choice: str):
    return compose_config("run_alignment", [f"alignment={choice}"]).alignment


def alignment(choice: str):
    """The function (for a site of ``WIDTH``, perturbed away from its initialisation so that every part
    of it does something) and the layout of the ``conf/alignment`` choice, as a run builds them."""
    node = alignment_config(choice)
    torch.manual_seed(0)
    f = build_function(node.function, WIDTH, sum(SIZES))
    with torch.no_grad():
        for p in f.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    layout = instantiate_checked(
        node.layout, None, variables=VARIABLES, sizes=SIZES, code_width=f.code_width, n_aligned=f.n_aligned
    )
    return f, layout


@pytest.mark.parametrize("choice", ALIGNMENTS)
def test_inverse_undoes_forward(choice: str) -> None:
    f, _ = alignment(choice)
    h = torch.randn(50, WIDTH) * 3
    z = f(h)
    assert z.shape == (50, f.code_width) and sum(SIZES) <= f.n_aligned <= f.code_width
    torch.testing.assert_close(f.inverse(z), h, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("choice", ALIGNMENTS)
def test_swapping_a_run_with_itself_and_empty_masks_are_identities(choice: str) -> None:
    f, layout = alignment(choice)
    interchange = Interchange([f], layout)
    h, other = torch.randn(40, WIDTH), torch.randn(40, WIDTH)
    for variable in VARIABLES:
        torch.testing.assert_close(interchange(h, h, variable), h, rtol=1e-4, atol=1e-4)
    empty = FixedLayout(VARIABLES, SIZES, f.code_width, f.n_aligned)
    empty.masks.zero_()
    torch.testing.assert_close(Interchange([f], empty)(h, other, "count"), h, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("choice", ALIGNMENTS)
def test_a_training_step_reaches_every_parameter(choice: str) -> None:
    """What the search calls on the layout (per step, the penalty, the sizes); gradients reach every
    parameter (a bias can get exactly zero: it cancels where source and target share the function)."""
    f, layout = alignment(choice)
    interchange = Interchange([f], layout)
    layout.on_train_step(0, 100)
    h, other = torch.randn(40, WIDTH), torch.randn(40, WIDTH)
    loss = interchange(h, other, "count").square().mean() + layout.penalty()
    loss.backward()
    grads = {name: p.grad for name, p in interchange.named_parameters()}
    assert all(g is not None for g in grads.values()), grads
    assert sum(float(g.abs().sum()) for g in grads.values()) > 0
    assert set(layout.learned_sizes()) == {"count", "phase"}


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
    layout.on_train_step(100, 100)  # the end of training
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
