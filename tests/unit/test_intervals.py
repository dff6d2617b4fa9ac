"""The 95% intervals and the tests of differences (alignsearch/intervals.py, issue 31) against known
answers: every reference value below was computed outside the code under test (by hand from the formulas,
and Student's t quantiles and tail probabilities by integrating the t density numerically at 30 digits),
then written in here."""

from __future__ import annotations

import math

import pytest
import torch

from alignsearch.intervals import (
    between_share,
    bootstrap_share,
    correlation_interval,
    paired_bootstrap,
    paired_difference,
    student_t,
    t_quantile,
    wilson,
)

# Student's t quantiles t(p, df): the two-sided 95% ones and a few others
T_QUANTILES = {
    (0.975, 1): 12.7062047,
    (0.975, 2): 4.3026527,
    (0.975, 4): 2.7764451,
    (0.975, 9): 2.2621572,
    (0.975, 30): 2.0422725,
    (0.975, 100): 1.9839715,
    (0.995, 10): 3.1692727,
    (0.95, 3): 2.3533634,
}


@pytest.mark.parametrize(("p", "df"), list(T_QUANTILES))
def test_t_quantiles_are_the_tables(p: float, df: int) -> None:
    assert t_quantile(p, df) == pytest.approx(T_QUANTILES[p, df], abs=5e-7)
    assert t_quantile(1 - p, df) == pytest.approx(-T_QUANTILES[p, df], abs=5e-7)  # symmetric


def test_t_quantiles_approach_the_normal_one() -> None:
    assert t_quantile(0.975, 100_000) == pytest.approx(1.9599640, abs=1e-4)
    assert t_quantile(0.5, 7) == 0.0


# Wilson's score interval, (k + z^2/2) / (n + z^2) -+ z sqrt(n) / (n + z^2) * sqrt(p (1 - p) + z^2 / (4 n))
# with z = 1.959963985 (the normal distribution's 0.975 quantile)
WILSON = {
    (45, 50): (0.7863977, 0.9565242),
    (0, 20): (0.0, 0.1611252),
    (20, 20): (0.8388748, 1.0),
    (7, 10): (0.3967781, 0.8922087),
    (118, 128): (0.8621531, 0.9570126),
    (1, 1): (0.2065493, 1.0),
}


@pytest.mark.parametrize(("k", "n"), list(WILSON))
def test_wilson_intervals_are_the_hand_computed_ones(k: int, n: int) -> None:
    low, high = wilson(k, n)
    assert (low, high) == pytest.approx(WILSON[k, n], abs=1e-6)
    assert low <= k / n <= high


def test_wilson_at_no_and_every_success_is_exactly_0_and_1() -> None:
    assert wilson(0, 1000)[0] == 0.0 and wilson(1000, 1000)[1] == 1.0
    assert wilson(45, 50, confidence=0.99)[0] < wilson(45, 50)[0]  # wider at a higher confidence


@pytest.mark.parametrize("args", [(1, 0), (-1, 10), (11, 10)])
def test_wilson_refuses_impossible_counts(args: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="expected 0 <= successes <= n and n >= 1"):
        wilson(*args)


def test_student_t_interval_of_five_seeds() -> None:
    # mean 0.96, sd 0.0158114, half-width 2.7764451 * 0.0158114 / sqrt(5) = 0.0196324
    mean, low, high = student_t([0.95, 0.97, 0.96, 0.98, 0.94])
    assert mean == pytest.approx(0.96, abs=1e-12)
    assert (low, high) == pytest.approx((0.9403676, 0.9796324), abs=1e-6)


def test_student_t_of_three_and_two_values_and_the_clip() -> None:
    # [0.9, 0.95, 1.0]: sd 0.05, 4.3026527 * 0.05 / sqrt(3) = 0.1242069
    assert student_t([0.9, 0.95, 1.0])[1:] == pytest.approx((0.8257931, 1.0742069), abs=1e-6)
    assert student_t([0.9, 0.95, 1.0], bounds=(0.0, 1.0))[1:] == pytest.approx((0.8257931, 1.0), abs=1e-6)
    # [0.6, 0.4]: sd 0.1414214, 12.7062047 * 0.1414214 / sqrt(2) = 1.2706205
    assert student_t([0.6, 0.4])[1:] == pytest.approx((-0.7706205, 1.7706205), abs=1e-6)
    assert student_t([0.6, 0.6])[1:] == pytest.approx((0.6, 0.6))  # no spread, no width


def test_one_seed_has_no_interval_and_none_is_refused() -> None:
    assert student_t([0.7]) == (0.7, None, None)
    with pytest.raises(ValueError, match="at least one"):
        student_t([])
    with pytest.raises(ValueError, match="between 0 and 1"):
        student_t([0.5, 0.6], confidence=95)


def test_bootstrap_is_seeded_and_deterministic() -> None:
    hits, totals = [3, 1, 4, 1, 5, 2, 6, 2, 5, 3, 5, 0] * 5, [6] * 60
    first = bootstrap_share(hits, totals, seed=3, resamples=200)
    assert first == bootstrap_share(hits, totals, seed=3, resamples=200)
    assert first != bootstrap_share(hits, totals, seed=4, resamples=200)  # another seed, other resamples
    assert bootstrap_share(torch.tensor(hits), torch.tensor(totals), seed=3, resamples=200) == first


def test_bootstrap_of_a_large_share_matches_the_normal_approximation() -> None:
    # 300 of 400 pairs right: the share 0.75 has standard error sqrt(0.75 * 0.25 / 400) = 0.0216506, so
    # the interval is about 0.75 -+ 1.96 * 0.0216506 = (0.7075650, 0.7924350)
    hits = [1] * 300 + [0] * 100
    low, high = bootstrap_share(hits, seed=0, resamples=4000)
    assert low == pytest.approx(0.7075650, abs=0.008) and high == pytest.approx(0.7924350, abs=0.008)


def test_bootstrap_pools_tokens_over_pairs() -> None:
    # token IIA: pairs of 4 task tokens; 150 pairs all right, 50 pairs with 2 of 4 right: the share is
    # 700/800 = 0.875. Per pair the share is 1 or 0.5 (a quarter of them 0.5): its standard error over 200
    # pairs is 0.5 * sqrt(0.25 * 0.75 / 200) = 0.0153093, so about 0.875 -+ 0.0300060
    hits, totals = [4] * 150 + [2] * 50, [4] * 200
    low, high = bootstrap_share(hits, totals, seed=0, resamples=4000)
    assert low == pytest.approx(0.8449940, abs=0.005) and high == pytest.approx(0.9050060, abs=0.005)
    assert low < 700 / 800 < high
    with pytest.raises(ValueError, match="as many"):
        bootstrap_share([1, 2], [3])


def test_every_pair_alike_gives_a_point() -> None:
    assert bootstrap_share([5, 5, 5], [5, 5, 5]) == (1.0, 1.0)
    assert bootstrap_share([0, 0]) == (0.0, 0.0)
    assert not math.isnan(
        bootstrap_share([0, 1], [0, 1])[0]
    )  # a resample of pairs without tokens is left out


# the paired t-test: differences d -> (mean, low, high, two-sided p) with the t distribution of n - 1
# degrees of freedom: mean -+ t(0.975, n - 1) * sd / sqrt(n), p = 2 P(T > |mean / (sd / sqrt(n))|)
PAIRED = {
    # mean 0.10, sd 0.0158114, 2.7764451 * 0.0158114 / sqrt(5) = 0.0196324; t = 14.1421356
    (0.10, 0.12, 0.08, 0.11, 0.09): (0.10, 0.0803676, 0.1196324, 0.000145128),
    # mean 0.31, sd 0.09, 4.3026527 * 0.09 / sqrt(3) = 0.2235724; t = 5.9659528
    (0.31, 0.22, 0.40): (0.31, 0.0864276, 0.5335724, 0.0269645),
    # mean 0.0175, sd 0.0298608, 3.1824463 * 0.0298608 / 2 = 0.0475152; t = 1.1721057
    (0.05, -0.02, 0.03, 0.01): (0.0175, -0.0300152, 0.0650152, 0.3257657),
    # mean 0.05, sd 0.2121320, 12.7062047 * 0.2121320 / sqrt(2) = 1.9059307; t = 1/3
    (0.2, -0.1): (0.05, -1.8559307, 1.9559307, 0.7951672),
}


@pytest.mark.parametrize("differences", list(PAIRED))
def test_paired_difference_is_the_paired_t_test(differences: tuple[float, ...]) -> None:
    b = [0.5 - 0.1 * i for i in range(len(differences))]  # any values: only the differences count
    a = [x + d for x, d in zip(b, differences, strict=True)]
    result = paired_difference(a, b)
    mean, low, high, p = PAIRED[differences]
    assert result.n == len(differences)
    assert (result.mean, result.low, result.high) == pytest.approx((mean, low, high), abs=1e-6)
    assert result.p == pytest.approx(p, rel=1e-5)
    swapped = paired_difference(b, a)  # the other way round: the same test, the sign turned
    assert (swapped.mean, swapped.low, swapped.high) == pytest.approx((-mean, -high, -low), abs=1e-6)
    assert swapped.p == result.p


def test_paired_difference_of_one_seed_or_no_spread() -> None:
    assert paired_difference([0.9], [0.7]) == (0.2, None, None, None, 1)  # one seed: no interval, no p
    same = paired_difference([0.9, 0.8, 0.7], [0.8, 0.7, 0.6])  # every difference 0.1: t is infinite
    assert (same.mean, same.low, same.high, same.p) == pytest.approx((0.1, 0.1, 0.1, 0.0))
    assert paired_difference([0.5, 0.6], [0.5, 0.6]).p == 1.0
    clipped = paired_difference([1.0, 0.2], [0.0, 0.1], bounds=(-1.0, 1.0))  # a difference of shares
    assert clipped.low == -1.0 and clipped.high == 1.0
    with pytest.raises(ValueError, match="expected as many"):
        paired_difference([0.5, 0.6], [0.5])
    with pytest.raises(ValueError, match="expected as many"):
        paired_difference([], [])


def test_paired_bootstrap_resamples_the_pairs_jointly() -> None:
    # 1000 pairs: both right on 450, only a on 150, only b on 50, neither on 350; a's share 0.6, b's 0.5.
    # Over the same pairs the difference's standard error is sqrt((0.15 + 0.05 - 0.1^2) / 1000) =
    # 0.0137840, so about 0.1 -+ 0.0270164 = (0.0729836, 0.1270164); as if the two were independent,
    # sqrt((0.6 * 0.4 + 0.5 * 0.5) / 1000) = 0.0221359 would give (0.0566141, 0.1433859), wider
    a = [1] * 450 + [1] * 150 + [0] * 50 + [0] * 350
    b = [1] * 450 + [0] * 150 + [1] * 50 + [0] * 350
    difference, low, high = paired_bootstrap(a, b, seed=0, resamples=4000)
    assert difference == pytest.approx(0.1)
    assert low == pytest.approx(0.0729836, abs=0.005) and high == pytest.approx(0.1270164, abs=0.005)
    assert high - low < 2 * 1.96 * 0.0221359 * 0.75
    assert paired_bootstrap(a, b, seed=0, resamples=500) == paired_bootstrap(
        torch.tensor(a), torch.tensor(b), seed=0, resamples=500
    )  # seeded: the same on every call
    assert paired_bootstrap(a, b, seed=0, resamples=500) != paired_bootstrap(a, b, seed=1, resamples=500)
    assert paired_bootstrap(b, a, seed=0, resamples=4000)[0] == pytest.approx(-0.1)


def test_paired_bootstrap_of_tokens_and_of_pairs_alike() -> None:
    # token shares over pairs of 4 task tokens: a right on 4 of every pair, b on 2 of the first 100 of
    # 200 and on 4 of the rest: 800/800 - 600/800 = 0.25; per pair the difference is 0.5 or 0, so its
    # standard error is 0.5 * sqrt(0.25 / 200) = 0.0176777, about 0.25 -+ 0.0346476
    totals = [4] * 200
    a, b = [4] * 200, [2] * 100 + [4] * 100
    difference, low, high = paired_bootstrap(a, b, totals, seed=0, resamples=4000)
    assert difference == pytest.approx(0.25)
    assert low == pytest.approx(0.2153524, abs=0.005) and high == pytest.approx(0.2846476, abs=0.005)
    assert paired_bootstrap([1, 0, 1], [1, 0, 1]) == (0.0, 0.0, 0.0)  # the same hits: no difference
    assert paired_bootstrap([1, 1], [0, 0]) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="the same pairs"):
        paired_bootstrap([1, 0, 1], [1, 0])


def test_a_correlations_interval_is_fishers() -> None:
    # r = 0.63 over 15 points: z = atanh(0.63) = 0.741537, se = 1 / sqrt(12) = 0.288675, 1.959964 se
    # = 0.565793: tanh(0.741537 - 0.565793) = 0.173840, tanh(0.741537 + 0.565793) = 0.863568
    assert correlation_interval(0.63, 15) == pytest.approx((0.17384, 0.863568), abs=2e-6)
    # within 5 groups of 4 points each: 20 - 5 - 2 = 13 degrees of freedom, se = 1 / sqrt(13)
    # r = 0.5: z = 0.549306, 1.959964 / sqrt(13) = 0.543596: tanh(0.005710) = 0.005710, tanh(1.092902) = 0.797935
    assert correlation_interval(0.5, 20, groups=5) == pytest.approx((0.00571, 0.797935), abs=2e-6)
    assert correlation_interval(0.9, 3) is None  # no degree of freedom left
    assert correlation_interval(1.0, 10) is None
    low, high = correlation_interval(-0.4, 30)
    assert -1 < low < -0.4 < high < 0  # not symmetric around r: the z transform


def test_the_share_between_models_is_the_intraclass_correlation() -> None:
    # three models of three runs: means 1, 2, 3 (grand 2), each run 0 or +-0.1 off its model's mean
    # MSB = 3 x (1 + 0 + 1) / 2 = 3; MSW = 3 x (0.01 + 0 + 0.01) / 6 = 0.01
    # ICC(1) = (3 - 0.01) / (3 + 2 x 0.01) = 2.99 / 3.02 = 0.990066
    assert between_share([[1.0, 1.1, 0.9], [2.0, 2.1, 1.9], [3.0, 3.1, 2.9]]) == pytest.approx(0.990066)
    # models that do not differ: MSB = 0 < MSW, clipped to 0
    assert between_share([[1.0, 2.0], [1.0, 2.0]]) == 0.0
    # runs of one model agree exactly, models differ: all of it between models
    assert between_share([[1.0, 1.0], [2.0, 2.0]]) == 1.0
    assert between_share([[1.0], [2.0]]) is None  # one run per model: nothing to split
