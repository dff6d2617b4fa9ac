"""The counterfactual-latent loss, the histogram divergence and CKA, against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from alignsearch.search.latent_targets import histogram_divergence, latent_loss
from alignsearch.similarity import cka, correlation


def test_latent_loss_is_the_mean_of_mse_and_cosine_distance_over_pairs_with_a_target() -> None:
    intervened = torch.tensor([[1.0, 0.0], [0.0, 2.0], [9.0, 9.0]])
    target = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 0.0]])
    found = torch.tensor([True, True, False])  # the third pair has no target: left out
    # pair 0: equal (squared error 0, cosine distance 0); pair 1: squared errors 4 + 4, orthogonal (distance 1)
    mse = (0 + 0 + 4 + 4) / 4  # mean over the entries of the pairs with a target
    cosine = (0 + 1) / 2
    assert float(latent_loss(intervened, target, found)) == pytest.approx((mse + cosine) / 2)


def test_latent_loss_counts_the_direction_not_only_the_distance() -> None:
    """Same squared error, opposite directions: only the cosine term tells them apart."""
    target = torch.tensor([[1.0, 0.0]])
    found = torch.tensor([True])
    along = latent_loss(torch.tensor([[3.0, 0.0]]), target, found)  # error (2, 0), same direction
    against = latent_loss(torch.tensor([[-1.0, 0.0]]), target, found)  # error (2, 0), opposite direction
    assert float(along) == pytest.approx((2.0 + 0.0) / 2)
    assert float(against) == pytest.approx((2.0 + 2.0) / 2)


def test_latent_loss_without_any_target_is_zero_and_keeps_the_graph() -> None:
    intervened = torch.randn(3, 4, requires_grad=True)
    loss = latent_loss(intervened, torch.zeros(3, 4), torch.zeros(3, dtype=torch.bool))
    assert float(loss.detach()) == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(intervened.grad, torch.zeros(3, 4))


def kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))


def test_histogram_divergence_is_the_symmetric_kl_of_the_smoothed_histograms() -> None:
    a = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0])
    b = torch.tensor([0.0, 1.0, 1.0])
    # two bins over [0, 1] (the common range), one pseudo-count per bin:
    p = [(4 + 1) / 7, (1 + 1) / 7]  # a: four values in the lower bin, one in the upper
    q = [(1 + 1) / 5, (2 + 1) / 5]  # b: one and two
    assert kl(p, q) != pytest.approx(kl(q, p))  # so a one-sided KL would give another value
    expected = (kl(p, q) + kl(q, p)) / 2
    assert histogram_divergence(a, b, bins=2) == pytest.approx(expected)
    assert histogram_divergence(b, a, bins=2) == pytest.approx(expected)


def test_histogram_divergence_is_symmetric_and_zero_for_equal_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(500, 4, generator=g)
    b = torch.rand(300, 4, generator=g) * 3 - 1
    assert histogram_divergence(a, b) == pytest.approx(histogram_divergence(b, a))
    assert histogram_divergence(a, b) > 0.05
    assert histogram_divergence(a, a[torch.randperm(500, generator=g)]) == pytest.approx(0.0, abs=1e-7)


def reference_linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA from the features, centred by hand: ||Yc' Xc||^2 / (||Xc' Xc|| ||Yc' Yc||)."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    return float((yc.T @ xc).pow(2).sum() / ((xc.T @ xc).norm() * (yc.T @ yc).norm()))


def test_cka_of_linear_kernels_matches_the_hand_centred_reference() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 5, generator=g, dtype=torch.double) + 4  # far from centred: centring matters
    related = x @ torch.randn(5, 3, generator=g, dtype=torch.double) + torch.randn(
        60, 3, generator=g, dtype=torch.double
    )
    unrelated = torch.randn(60, 3, generator=g, dtype=torch.double) - 6
    for y in (related, unrelated, x):
        assert cka(x @ x.T, y @ y.T) == pytest.approx(reference_linear_cka(x, y), rel=1e-9, abs=1e-12)
    k, m = x @ x.T, unrelated @ unrelated.T
    uncentred = float((k * m).sum() / ((k * k).sum() * (m * m).sum()).sqrt())
    assert reference_linear_cka(x, unrelated) < 0.3 and uncentred > 0.9  # the means alone look alike


def test_spearman_correlation_is_the_pearson_correlation_of_the_ranks() -> None:
    a = torch.tensor([4.0, 1.0, 3.0, 2.0], dtype=torch.double)  # ranks 3 0 2 1
    b = torch.tensor([2.0, 4.0, 1.0, 3.0], dtype=torch.double)  # ranks 1 3 0 2
    # centred ranks (1.5, -1.5, 0.5, -0.5) and (-0.5, 1.5, -1.5, 0.5): products sum to -4, norms sqrt(5)
    assert correlation(a, b, "spearman") == pytest.approx(-4 / 5)
    assert correlation(a, b**3, "spearman") == pytest.approx(-4 / 5)  # ranks only: b**3 ranks alike
    assert correlation(a, b, "pearson") == pytest.approx(-0.8)  # these values are their own ranks + 1
