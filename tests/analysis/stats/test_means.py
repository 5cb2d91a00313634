from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gateway.analysis.stats.interval import Alternative
from gateway.analysis.stats.means import (
    difference_of_means,
    lift_and_se,
    mean_interval,
    relative_lift,
)
from gateway.analysis.stats.moments import MeanVariance

RNG = np.random.default_rng(20180819)
A = RNG.lognormal(1.0, 0.8, size=300)
B = RNG.lognormal(1.1, 0.9, size=250)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_mean_interval_matches_scipy_ttest_1samp(alternative: Alternative) -> None:
    ref = stats.ttest_1samp(A, 2.5, alternative=alternative)
    ci = ref.confidence_interval(0.9)
    e = mean_interval(MeanVariance.of(A), 0.9, alternative, null=2.5)
    assert e.value == pytest.approx(A.mean())
    assert (e.low, e.high) == pytest.approx((ci.low, ci.high))
    assert e.p_value == pytest.approx(ref.pvalue)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_difference_matches_scipy_welch(alternative: Alternative) -> None:
    ref = stats.ttest_ind(A, B, equal_var=False, alternative=alternative)
    ci = ref.confidence_interval(0.95)
    e = difference_of_means(MeanVariance.of(A), MeanVariance.of(B), alternative=alternative)
    assert e.value == pytest.approx(A.mean() - B.mean())
    assert (e.low, e.high) == pytest.approx((ci.low, ci.high))
    assert e.p_value == pytest.approx(ref.pvalue)


def test_edges_of_the_mean() -> None:
    assert not mean_interval(MeanVariance()).defined
    one = mean_interval(MeanVariance.of([4.0]))
    assert one.value == 4.0 and math.isnan(one.low) and "one observation" in one.note
    flat = mean_interval(MeanVariance.of([2.0] * 5), null=2.0)
    assert (flat.low, flat.high, flat.p_value, flat.note) == (2.0, 2.0, 1.0, "zero variance")
    assert mean_interval(MeanVariance.of([2.0] * 5)).p_value == 0.0


def test_edges_of_two_groups() -> None:
    some = MeanVariance.of([1.0, 2.0, 3.0])
    assert not difference_of_means(some, MeanVariance()).defined
    assert "two observations" in difference_of_means(some, MeanVariance.of([1.0])).note
    flat = difference_of_means(MeanVariance.of([1.0, 1.0]), MeanVariance.of([1.0, 1.0]))
    assert (flat.value, flat.low, flat.high, flat.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert "baseline mean is 0" in relative_lift(some, MeanVariance.of([0.0, 0.0])).note


def test_relative_lift_formula() -> None:
    # Deng et al. (2018) delta method, written out by hand for two small groups.
    a, b = MeanVariance.of([2.0, 4.0, 6.0]), MeanVariance.of([1.0, 2.0, 3.0, 6.0])
    lift, se = lift_and_se(a, b)
    var = 4.0 / (3.0**2 * 3) + 4.0**2 * 14.0 / 3.0 / (3.0**4 * 4)
    assert lift == pytest.approx(4.0 / 3.0 - 1)
    assert se == pytest.approx(math.sqrt(var))
    e = relative_lift(a, b)
    assert e.low < e.value < e.high


def test_relative_lift_se_and_coverage_by_simulation() -> None:
    # 1,500 simulated experiments (exponential revenue, true lift +10%): the delta-method SE
    # matches the spread of the lift estimates and the 95% interval covers the truth.
    rng = np.random.default_rng(7)
    n1, n2, reps = 400, 500, 1500
    x1 = rng.exponential(1.1, size=(reps, n1))
    x2 = rng.exponential(1.0, size=(reps, n2))
    m1, m2 = x1.mean(axis=1), x2.mean(axis=1)
    s1 = ((x1 - m1[:, None]) ** 2).sum(axis=1)
    s2 = ((x2 - m2[:, None]) ** 2).sum(axis=1)
    lifts, ses, covered = [], [], 0
    for i in range(reps):
        a, b = (
            MeanVariance(n1, float(m1[i]), float(s1[i])),
            MeanVariance(n2, float(m2[i]), float(s2[i])),
        )
        e = relative_lift(a, b)
        lifts.append(e.value)
        ses.append(lift_and_se(a, b)[1])
        covered += e.low <= 0.1 <= e.high
    assert float(np.mean(ses)) == pytest.approx(float(np.std(lifts)), rel=0.05)
    assert 0.935 <= covered / reps <= 0.965, covered / reps
