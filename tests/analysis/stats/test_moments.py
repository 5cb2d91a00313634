from __future__ import annotations

import math

import numpy as np
import pytest

from gateway.analysis.stats.moments import MeanVariance


def test_of_matches_numpy() -> None:
    x = np.random.default_rng(1).lognormal(size=1001)
    s = MeanVariance.of(x)
    assert s.n == 1001
    assert s.mean == pytest.approx(x.mean())
    assert s.variance == pytest.approx(x.var(ddof=1))
    assert s.sem == pytest.approx(x.std(ddof=1) / math.sqrt(1001))


def test_merging_batches_equals_one_pass() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(50.0, 3.0, size=10_000)
    cuts = np.sort(rng.choice(np.arange(1, x.size), size=37, replace=False))
    acc = MeanVariance()
    for chunk in np.split(x, cuts):
        acc = acc.add(chunk)
    whole = MeanVariance.of(x)
    assert acc.n == whole.n
    assert acc.mean == pytest.approx(whole.mean, rel=1e-13)
    assert acc.m2 == pytest.approx(whole.m2, rel=1e-10)
    assert MeanVariance.of(x[:10]).merge(MeanVariance.of(x[10:])).variance == pytest.approx(
        whole.variance, rel=1e-10
    )


def test_merge_is_stable_where_raw_sums_cancel() -> None:
    # Latencies in nanoseconds since the epoch style offsets: mean 1e9, spread 1.
    x = 1e9 + np.random.default_rng(3).normal(size=1000)
    merged = MeanVariance.of(x[:500]).merge(MeanVariance.of(x[500:]))
    assert merged.variance == pytest.approx(x.var(ddof=1), rel=1e-6)


def test_from_sums_and_from_counts() -> None:
    x = np.array([1.0, 2.0, 4.0, 7.0])
    s = MeanVariance.from_sums(4, float(x.sum()), float((x * x).sum()))
    assert (s.n, s.mean, s.variance) == pytest.approx((4, 3.5, x.var(ddof=1)))
    c = MeanVariance.from_counts(3, 10)
    ref = MeanVariance.of([1.0] * 3 + [0.0] * 7)
    assert (c.n, c.mean, c.variance) == pytest.approx((ref.n, ref.mean, ref.variance))
    assert MeanVariance.from_counts(0, 0) == MeanVariance() == MeanVariance.from_sums(0, 0, 0)


def test_edges() -> None:
    assert math.isnan(MeanVariance().variance)
    one = MeanVariance.of([3.0])
    assert one.mean == 3.0 and math.isnan(one.variance) and math.isnan(one.sem)
    assert MeanVariance.of([2.0, 2.0, 2.0]).variance == 0.0
    assert MeanVariance().add([]) == MeanVariance()


@pytest.mark.parametrize("bad", [[1.0, math.nan], [math.inf], [[1.0, 2.0]]])
def test_rejects_non_finite_or_2d(bad: list[object]) -> None:
    with pytest.raises(ValueError):
        MeanVariance.of(bad)


def test_rejects_bad_counts() -> None:
    with pytest.raises(ValueError):
        MeanVariance.from_counts(5, 3)
    with pytest.raises(ValueError):
        MeanVariance.from_sums(-1, 0.0, 0.0)
