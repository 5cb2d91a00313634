from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats

from gateway.analysis.stats.auc import delong_test, roc_auc
from gateway.analysis.stats.bootstrap import paired_bootstrap
from gateway.analysis.stats.means import mean_interval
from gateway.analysis.stats.moments import MeanVariance


def test_mean_difference_agrees_with_scipy_bootstrap_and_t() -> None:
    rng = np.random.default_rng(11)
    a = rng.exponential(1.0, size=500)
    b = a * 0.9 + rng.exponential(0.15, size=500)

    def diff(i: NDArray[np.intp]) -> float:
        return float(a[i].mean() - b[i].mean())

    ours = paired_bootstrap(diff, 500, np.random.default_rng(12), n_resamples=2000)
    ref = stats.bootstrap(
        (a, b),
        lambda x, y, axis: x.mean(axis=axis) - y.mean(axis=axis),
        paired=True,
        method="percentile",
        n_resamples=2000,
        rng=np.random.default_rng(13),
    ).confidence_interval
    t = mean_interval(MeanVariance.of(a - b))
    assert ours.value == pytest.approx(a.mean() - b.mean())
    width = t.high - t.low
    for low, high in ((ref.low, ref.high), (t.low, t.high)):
        assert ours.low == pytest.approx(low, abs=0.05 * width)
        assert ours.high == pytest.approx(high, abs=0.05 * width)


def test_auc_difference_agrees_with_delong() -> None:
    rng = np.random.default_rng(14)
    n = 600
    y = rng.integers(0, 2, size=n)
    s1 = y + rng.normal(size=n)
    s2 = y + rng.normal(size=n) * 1.3

    def diff(i: NDArray[np.intp]) -> float:
        return roc_auc(y[i], s1[i]).value - roc_auc(y[i], s2[i]).value

    boot = paired_bootstrap(diff, n, np.random.default_rng(15), n_resamples=250)
    delong = delong_test(y, s1, s2).difference
    assert boot.value == pytest.approx(delong.value)
    width = delong.high - delong.low
    assert boot.low == pytest.approx(delong.low, abs=0.1 * width)
    assert boot.high == pytest.approx(delong.high, abs=0.1 * width)


def test_seeded_generator_makes_it_deterministic() -> None:
    x = np.arange(50, dtype=float)

    def mean(i: NDArray[np.intp]) -> float:
        return float(x[i].mean())

    one = paired_bootstrap(mean, 50, np.random.default_rng(1), n_resamples=200)
    two = paired_bootstrap(mean, 50, np.random.default_rng(1), n_resamples=200)
    assert one == two


def test_edges() -> None:
    def zero(i: NDArray[np.intp]) -> float:
        return 0.0

    assert not paired_bootstrap(zero, 0, np.random.default_rng(0)).defined
    single = paired_bootstrap(zero, 1, np.random.default_rng(0), n_resamples=10)
    assert (single.value, single.low, single.high) == (0.0, 0.0, 0.0)
    y = np.array([0, 1, 1])

    def auc(i: NDArray[np.intp]) -> float:
        return roc_auc(y[i], np.array([0.1, 0.9, 0.8])[i]).value

    some_nan = paired_bootstrap(auc, 3, np.random.default_rng(0), n_resamples=100)
    assert "resamples undefined" in some_nan.note
    none_defined = paired_bootstrap(lambda i: math.nan, 3, np.random.default_rng(0), 10)
    assert math.isnan(none_defined.low) and none_defined.note == "10 of 10 resamples undefined"
    with pytest.raises(ValueError):
        paired_bootstrap(zero, 3, np.random.default_rng(0), n_resamples=0)
