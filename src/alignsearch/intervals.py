"""95% intervals: over the pairs of one run (Wilson for a share of trials, a seeded bootstrap for a share
of tokens) and over seeds (Student's t), and tests of differences between two conditions (a paired t-test
over seeds, a paired bootstrap over the pairs of one seed), with no dependency beyond the standard library
and torch.

What an interval covers: the sampling of the pairs a run is evaluated on (:func:`wilson`,
:func:`bootstrap_share`, :func:`paired_bootstrap`) or of the seeds a mean is taken over
(:func:`student_t`, :func:`paired_difference`). It says nothing of choices held fixed across them: the
task's sampling settings, the architecture, the alignment's settings.

    >>> wilson(45, 50)
    (0.786398, 0.956524)
    >>> student_t([0.95, 0.97, 0.96, 0.98, 0.94])
    (0.96, 0.940368, 0.979632)
    >>> paired_difference([0.95, 0.97, 0.96], [0.85, 0.85, 0.88])  # a - b over 3 seeds, its t-test's p
    PairedDifference(mean=0.1, low=0.050317, high=0.149683, p=0.0130725, n=3)

Every bound is rounded to :data:`DIGITS` decimals (plenty for a 95% interval, and stable in files).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import NamedTuple

import torch

CONFIDENCE = 0.95
"""The confidence of every interval the project reports."""
RESAMPLES = 2000
"""Bootstrap resamples of :func:`bootstrap_share` by default."""
DIGITS = 6
"""Decimals an interval's bounds are rounded to."""
UNIT = (0.0, 1.0)
"""The range of a share (IIA, accuracy): what :func:`student_t` clips a share's interval to."""


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence}: expected a number between 0 and 1 (0.95)")


def normal_quantile(p: float) -> float:
    """The standard normal distribution's ``p`` quantile (the standard library's).

    >>> round(normal_quantile(0.975), 6)
    1.959964
    """
    return statistics.NormalDist().inv_cdf(p)


def wilson(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of a share of trials: ``successes`` right out of ``n`` (Wilson 1927).

    Unlike the normal-approximation (Wald) interval it stays inside [0, 1] and is not empty at 0 or n
    successes, where the IIA of a run often is. ``n`` must be at least 1.

    >>> wilson(0, 20), wilson(20, 20)
    ((0.0, 0.161125), (0.838875, 1.0))
    """
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"wilson({successes}, {n}): expected 0 <= successes <= n and n >= 1")
    _check_confidence(confidence)
    z = normal_quantile(0.5 + confidence / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return round(low, DIGITS), round(high, DIGITS)


def student_t(
    values: Sequence[float], confidence: float = CONFIDENCE, bounds: tuple[float, float] | None = None
) -> tuple[float, float | None, float | None]:
    """``(mean, low, high)``: the mean of ``values`` (one per seed) and its Student's t interval,
    ``mean ± t(1 - (1 - confidence) / 2, n - 1) * sd / sqrt(n)`` with the sample standard deviation.

    One value has no spread, so no interval: ``(value, None, None)``. ``bounds`` clips the interval to
    the range the measure can take (:data:`UNIT` for a share: a mean of IIAs is never above 1), which
    keeps its coverage. The mean is not rounded; the bounds are (:data:`DIGITS`).

    >>> student_t([0.8, 0.9, 1.0]), student_t([0.8, 0.9, 1.0], bounds=UNIT)
    ((0.9, 0.651586, 1.148414), (0.9, 0.651586, 1.0))
    >>> student_t([0.5])
    (0.5, None, None)
    """
    if not values:
        raise ValueError("student_t of no values: expected at least one")
    _check_confidence(confidence)
    mean = statistics.fmean(values)
    n = len(values)
    if n == 1:
        return mean, None, None
    half = t_quantile(0.5 + confidence / 2, n - 1) * statistics.stdev(values) / math.sqrt(n)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(bounds[0], low), min(bounds[1], high)
    return mean, round(low, DIGITS), round(high, DIGITS)


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t distribution with ``df`` degrees of freedom, computed exactly (to
    about 1e-10): the distribution function through the regularized incomplete beta function
    (:func:`incomplete_beta`), inverted by bisection. No table, no normal approximation.

    >>> round(t_quantile(0.975, 4), 7), round(t_quantile(0.975, 1), 5), round(t_quantile(0.025, 9), 7)
    (2.7764451, 12.7062, -2.2621572)
    """
    if df < 1:
        raise ValueError(f"t_quantile with df={df}: expected at least 1 degree of freedom")
    if not 0 < p < 1:
        raise ValueError(f"t_quantile({p}): expected 0 < p < 1")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    if p == 0.5:
        return 0.0
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2


def t_cdf(t: float, df: int) -> float:
    """Student's t distribution function: for t >= 0, ``1 - I_x(df / 2, 1 / 2) / 2`` with
    ``x = df / (df + t^2)``.

    >>> t_cdf(0.0, 3), round(t_cdf(2.7764451, 4), 6)
    (0.5, 0.975)
    """
    tail = 0.5 * incomplete_beta(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t >= 0 else tail


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function ``I_x(a, b)``, by its continued fraction (modified Lentz;
    the symmetry ``I_x(a, b) = 1 - I_{1-x}(b, a)`` where the fraction converges slowly).

    >>> incomplete_beta(1, 1, 0.3), round(incomplete_beta(2, 3, 0.4), 6)
    (0.3, 0.5248)
    """
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1 - incomplete_beta(b, a, 1 - x)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 1000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    return math.exp(log_front) * fraction / a


def bootstrap_share(
    hits: Sequence[int] | torch.Tensor,
    totals: Sequence[int] | torch.Tensor | None = None,
    *,
    seed: int = 0,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """A percentile bootstrap interval over pairs of a pooled share: ``sum(hits) / sum(totals)``, with
    pair ``i`` right on ``hits[i]`` of its ``totals[i]`` items (the token IIA: task tokens right out of a
    pair's task tokens; ``totals`` None: one item a pair, the mean of ``hits``).

    Each of ``resamples`` resamples draws as many pairs as there are, with replacement, from a torch
    generator seeded with ``seed`` (the same inputs and seed give the same interval, on every machine);
    the bounds are the resampled shares' ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles
    (linear interpolation between order statistics). Where every pair has the same share the interval
    is that value alone: the bootstrap sees no spread to resample.

    >>> bootstrap_share([3, 3, 3], [3, 3, 3])
    (1.0, 1.0)
    >>> bootstrap_share([1, 0, 1, 1], seed=1) == bootstrap_share([1, 0, 1, 1], seed=1)
    True
    """
    _check_confidence(confidence)
    hit = torch.as_tensor(hits, dtype=torch.float64).flatten()
    total = torch.ones_like(hit) if totals is None else torch.as_tensor(totals, dtype=torch.float64).flatten()
    if hit.numel() == 0 or hit.shape != total.shape:
        raise ValueError(
            f"bootstrap_share of {hit.numel()} hits and {total.numel()} totals: expected as many, at least one"
        )
    if float(total.sum()) <= 0:
        raise ValueError("bootstrap_share: the totals add up to nothing")
    generator = torch.Generator().manual_seed(seed)
    draws = torch.randint(0, hit.numel(), (resamples, hit.numel()), generator=generator)
    shares = hit[draws].sum(1) / total[draws].sum(1).clamp_min(1e-300)
    shares = shares[total[draws].sum(1) > 0]  # a resample of pairs without items has no share
    tail = (1 - confidence) / 2
    low, high = torch.quantile(shares, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    return round(max(0.0, low), DIGITS), round(min(1.0, high), DIGITS)


class PairedDifference(NamedTuple):
    """A difference between two conditions over the seeds both have (:func:`paired_difference`): the mean
    of the per-seed differences, its 95% interval (Student's t), the two-sided p-value of the paired
    t-test and the number of seeds paired; one seed: no interval and no p-value (None)."""

    mean: float
    low: float | None
    high: float | None
    p: float | None
    n: int


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    confidence: float = CONFIDENCE,
    bounds: tuple[float, float] | None = None,
) -> PairedDifference:
    """The paired t-test of ``a`` against ``b``, one value of each per seed (``a[i]`` and ``b[i]`` of the
    same seed): the mean of the differences ``a[i] - b[i]``, its Student's t interval (:func:`student_t`
    of the differences; ``bounds`` clips it: ``(-1, 1)`` for a difference of shares) and the two-sided
    p-value of ``t = mean / (sd / sqrt(n))`` with ``n - 1`` degrees of freedom, computed exactly as
    ``I_x((n - 1) / 2, 1 / 2)`` with ``x = (n - 1) / (n - 1 + t^2)`` (:func:`incomplete_beta`; rounded to
    6 significant digits).

    Differences without spread give an interval of their mean alone and p = 0 (p = 1 where they are all
    0): the t statistic is infinite. One seed gives its difference with no interval and no p-value.

    >>> paired_difference([0.5, 0.62, 0.48, 0.61, 0.59], [0.4, 0.5, 0.4, 0.5, 0.5])
    PairedDifference(mean=0.1, low=0.080368, high=0.119632, p=0.000145128, n=5)
    >>> paired_difference([0.9], [0.7])
    PairedDifference(mean=0.2, low=None, high=None, p=None, n=1)
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_difference of {len(a)} and {len(b)} values: expected as many, at least one")
    differences = [x - y for x, y in zip(a, b, strict=True)]
    mean, low, high = student_t(differences, confidence, bounds)
    mean = round(mean, 12)  # 0.62 - 0.5 and the like: no float noise in the mean shown
    n = len(differences)
    if n == 1:
        return PairedDifference(mean, None, None, None, 1)
    sd = statistics.stdev(differences)
    if sd == 0:
        return PairedDifference(mean, low, high, 1.0 if mean == 0 else 0.0, n)
    t = mean / (sd / math.sqrt(n))
    p = incomplete_beta((n - 1) / 2, 0.5, (n - 1) / (n - 1 + t * t))
    return PairedDifference(mean, low, high, float(f"{p:.6g}"), n)  # 6 significant digits: a tiny p too


def paired_bootstrap(
    hits_a: Sequence[int] | torch.Tensor,
    hits_b: Sequence[int] | torch.Tensor,
    totals: Sequence[int] | torch.Tensor | None = None,
    *,
    seed: int = 0,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
) -> tuple[float, float, float]:
    """``(difference, low, high)``: the difference of two pooled shares measured on the same pairs of one
    seed, ``sum(hits_a) / sum(totals) - sum(hits_b) / sum(totals)`` (pair ``i`` right on ``hits_a[i]``
    and ``hits_b[i]`` of its ``totals[i]`` items; ``totals`` None: one item a pair), and its percentile
    bootstrap interval over the pairs, resampled jointly: each resample draws pairs with replacement
    (a torch generator seeded with ``seed``: the same inputs give the same interval on every machine)
    and takes both conditions' shares on the pairs drawn, so what the pairs share cancels out of the
    difference. The interval is clipped to [-1, 1]; the difference is not rounded, the bounds are
    (:data:`DIGITS`).

    >>> paired_bootstrap([1, 1, 0, 1], [1, 1, 0, 1])
    (0.0, 0.0, 0.0)
    >>> paired_bootstrap([1, 0, 1, 1], [0, 0, 1, 0], seed=1) == paired_bootstrap([1, 0, 1, 1], [0, 0, 1, 0], seed=1)
    True
    """
    _check_confidence(confidence)
    hit_a = torch.as_tensor(hits_a, dtype=torch.float64).flatten()
    hit_b = torch.as_tensor(hits_b, dtype=torch.float64).flatten()
    total = (
        torch.ones_like(hit_a) if totals is None else torch.as_tensor(totals, dtype=torch.float64).flatten()
    )
    if hit_a.numel() == 0 or hit_a.shape != hit_b.shape or hit_a.shape != total.shape:
        raise ValueError(
            f"paired_bootstrap of {hit_a.numel()} and {hit_b.numel()} hits and {total.numel()} totals:"
            " expected as many (the same pairs), at least one"
        )
    if float(total.sum()) <= 0:
        raise ValueError("paired_bootstrap: the totals add up to nothing")
    difference = float((hit_a.sum() - hit_b.sum()) / total.sum())
    generator = torch.Generator().manual_seed(seed)
    draws = torch.randint(0, hit_a.numel(), (resamples, hit_a.numel()), generator=generator)
    drawn = total[draws].sum(1)
    differences = (hit_a[draws].sum(1) - hit_b[draws].sum(1)) / drawn.clamp_min(1e-300)
    differences = differences[drawn > 0]  # a resample of pairs without items has no share
    tail = (1 - confidence) / 2
    low, high = torch.quantile(differences, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    return difference, round(max(-1.0, low), DIGITS), round(min(1.0, high), DIGITS)


def correlation_interval(
    r: float, n: int, groups: int = 1, confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """The interval of a Pearson correlation ``r`` over ``n`` points by Fisher's z transform: ``atanh(r)``
    is about normal with standard error ``1 / sqrt(n - 3)``. Points centred within ``groups`` groups
    (each group's mean taken out: a correlation within models) lose a degree of freedom per group,
    ``1 / sqrt(n - groups - 2)``. None where that leaves no degree of freedom or ``|r| = 1``.

    >>> correlation_interval(0.63, 15)
    (0.17384, 0.863568)
    >>> correlation_interval(0.5, 20, groups=5), correlation_interval(0.9, 3)
    ((0.00571, 0.797935), None)
    """
    _check_confidence(confidence)
    dof = n - groups - 2
    if dof < 1 or abs(r) >= 1:
        return None
    z, half = math.atanh(r), normal_quantile(0.5 + confidence / 2) / math.sqrt(dof)
    return round(math.tanh(z - half), DIGITS), round(math.tanh(z + half), DIGITS)


def between_share(groups: Sequence[Sequence[float]]) -> float | None:
    """The share of a measure's variance that lies between groups (models) rather than within them (the
    runs of one model): the one-way intraclass correlation ICC(1) = (MSB - MSW) / (MSB + (k - 1) MSW)
    with ``k`` runs per group (their mean where groups differ in size), clipped to [0, 1]. 1: the runs of
    a model agree and models differ; 0: models differ no more than runs of one model do. None with fewer
    than two groups of at least two values each, or no spread at all.

    >>> between_share([[1.0, 1.1, 0.9], [2.0, 2.1, 1.9], [3.0, 3.1, 2.9]])
    0.990066
    >>> between_share([[1.0, 2.0], [1.0, 2.0]])
    0.0
    """
    groups = [list(g) for g in groups if len(g) >= 2]
    if len(groups) < 2:
        return None
    everything = [x for g in groups for x in g]
    grand, n = statistics.fmean(everything), len(everything)
    k = n / len(groups)
    msb = sum(len(g) * (statistics.fmean(g) - grand) ** 2 for g in groups) / (len(groups) - 1)
    msw = sum((x - statistics.fmean(g)) ** 2 for g in groups for x in g) / (n - len(groups))
    if msb + (k - 1) * msw == 0:
        return None
    return round(min(1.0, max(0.0, (msb - msw) / (msb + (k - 1) * msw))), DIGITS)
