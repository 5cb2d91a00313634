"""Intervals for a mean, a difference of two independent means and their relative lift.

A paired comparison (two models on the same requests) is the one-sample interval of the
per-request differences d_i = metric(first) - metric(second): accumulate MeanVariance of d.
"""

from __future__ import annotations

import math

from gateway.analysis.stats.interval import (
    Alternative,
    Estimate,
    check_alternative,
    check_confidence,
    normal_estimate,
)
from gateway.analysis.stats.moments import MeanVariance


def mean_interval(
    stats: MeanVariance,
    confidence: float = 0.95,
    alternative: Alternative = "two-sided",
    null: float = 0.0,
) -> Estimate:
    """Student's one-sample t interval for the mean, and the t-test against `null`.

    "Student" (Gosset, W. S.) (1908). "The probable error of a mean". Biometrika 6, 1-25.
    Applies to means of many independent rows (the CLT makes t right for skewed metrics once n
    is in the hundreds). n = 0: undefined; n = 1: the value without an interval.
    """
    check_confidence(confidence)
    check_alternative(alternative)
    if stats.n == 0:
        return Estimate.undefined(confidence, "no observations")
    if stats.n == 1:
        return _point_only(stats.mean, confidence, "one observation: no variance")
    return normal_estimate(
        stats.mean, stats.sem, confidence, alternative, null, df=float(stats.n - 1)
    )


def difference_of_means(
    first: MeanVariance,
    second: MeanVariance,
    confidence: float = 0.95,
    alternative: Alternative = "two-sided",
    null: float = 0.0,
) -> Estimate:
    """Welch's interval and test for mean(first) - mean(second), unequal variances.

    Welch, B. L. (1947). "The generalization of 'Student's' problem when several different
    population variances are involved". Biometrika 34, 28-35; Satterthwaite (1946) degrees
    of freedom. For two independent groups (canary users vs champion users).
    """
    check_confidence(confidence)
    check_alternative(alternative)
    thin = _too_thin(first, second, confidence)
    if thin is not None:
        return thin
    se, df = _welch(first, second)
    return normal_estimate(first.mean - second.mean, se, confidence, alternative, null, df=df)


def relative_lift(
    first: MeanVariance,
    second: MeanVariance,
    confidence: float = 0.95,
    alternative: Alternative = "two-sided",
    null: float = 0.0,
) -> Estimate:
    """Relative lift mean(first) / mean(second) - 1 with a delta-method interval.

    Deng, A., Knoblich, U. & Lu, J. (2018). "Applying the Delta Method in Metric Analytics: A
    Practical Guide with Novel Ideas". KDD 2018. Variance
    var1 / (m2^2 n1) + m1^2 var2 / (m2^4 n2), Welch degrees of freedom, as GrowthBook's gbstats
    frequentist TwoSidedTTest does. Undefined when the baseline mean is 0.
    """
    check_confidence(confidence)
    check_alternative(alternative)
    thin = _too_thin(first, second, confidence)
    if thin is not None:
        return thin
    if second.mean == 0:
        return Estimate.undefined(confidence, "baseline mean is 0: lift is undefined")
    lift, se = lift_and_se(first, second)
    _, df = _welch(first, second)
    return normal_estimate(lift, se, confidence, alternative, null, df=df)


def lift_and_se(first: MeanVariance, second: MeanVariance) -> tuple[float, float]:
    """Relative lift and its delta-method standard error (second.mean != 0, n >= 2 each)."""
    m1, m2 = first.mean, second.mean
    var = first.variance / (m2 * m2 * first.n) + m1 * m1 * second.variance / (m2**4 * second.n)
    return m1 / m2 - 1, math.sqrt(var)


def _welch(first: MeanVariance, second: MeanVariance) -> tuple[float, float]:
    a = first.variance / first.n
    b = second.variance / second.n
    if a + b == 0:
        return 0.0, math.inf
    df = (a + b) ** 2 / (a * a / (first.n - 1) + b * b / (second.n - 1))
    return math.sqrt(a + b), df


def _too_thin(first: MeanVariance, second: MeanVariance, confidence: float) -> Estimate | None:
    if first.n == 0 or second.n == 0:
        return Estimate.undefined(confidence, "a group has no observations")
    if first.n < 2 or second.n < 2:
        return Estimate.undefined(confidence, "need two observations per group")
    return None


def _point_only(value: float, confidence: float, note: str) -> Estimate:
    return Estimate(value, math.nan, math.nan, confidence, math.nan, note)
