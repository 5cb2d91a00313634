from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gateway.analysis.stats.correlation import CoMoments, pearson


def test_pearson_matches_scipy() -> None:
    rng = np.random.default_rng(1915)
    x = rng.normal(size=200)
    y = 0.3 * x + rng.normal(size=200)
    ref = stats.pearsonr(x, y)
    ci = ref.confidence_interval(0.9)
    e = pearson(CoMoments.of(x, y), 0.9)
    assert e.value == pytest.approx(ref.statistic)
    assert e.p_value == pytest.approx(ref.pvalue)
    assert (e.low, e.high) == pytest.approx((ci.low, ci.high))


def test_merge_and_sums_agree_with_one_pass() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(10.0, 2.0, size=1000)
    y = x * 0.5 + rng.normal(size=1000)
    whole = CoMoments.of(x, y)
    merged = CoMoments().merge(CoMoments.of(x[:123], y[:123])).merge(CoMoments.of(x[123:], y[123:]))
    sums = CoMoments.from_sums(1000, x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum())
    for other in (merged, sums):
        assert pearson(other).value == pytest.approx(pearson(whole).value, rel=1e-9)
    assert CoMoments.from_sums(0, 0, 0, 0, 0, 0) == CoMoments()


def test_edges() -> None:
    assert not pearson(CoMoments()).defined
    assert "constant" in pearson(CoMoments.of([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])).note
    perfect = pearson(CoMoments.of([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]))
    assert (perfect.value, perfect.p_value) == (pytest.approx(1.0), 0.0)
    three = pearson(CoMoments.of([1.0, 2.0, 3.0], [1.0, 3.0, 2.0]))
    assert three.value == pytest.approx(0.5) and math.isnan(three.low)
    assert three.p_value == pytest.approx(stats.pearsonr([1, 2, 3], [1, 3, 2]).pvalue)
    with pytest.raises(ValueError):
        CoMoments.of([1.0], [1.0, 2.0])
