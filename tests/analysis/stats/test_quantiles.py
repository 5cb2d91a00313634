from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gateway.analysis.stats.quantiles import LogHistogram

QS = [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0]


def test_quantiles_within_relative_error_of_exact() -> None:
    x = np.random.default_rng(2019).lognormal(mean=2.0, sigma=1.2, size=50_000)  # ms
    h = LogHistogram().add(x)
    for q in QS:
        exact = float(np.quantile(x, q, method="lower"))
        assert abs(h.quantile(q) - exact) <= 0.01 * exact * (1 + 1e-9), q
    assert h.n == x.size and h.mean == pytest.approx(x.mean())


def test_merge_equals_adding_everything() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.exponential(20.0, size=3000), rng.exponential(80.0, size=1000)
    merged = LogHistogram().add(a).merge(LogHistogram().add(b))
    whole = LogHistogram().add(np.r_[a, b])
    assert np.array_equal(merged.counts, whole.counts)
    assert merged.total == pytest.approx(whole.total)
    with pytest.raises(ValueError):
        merged.merge(LogHistogram(relative_accuracy=0.02))


def test_serialises_to_json_and_back() -> None:
    h = LogHistogram().add([0.5, 3.0, 3.0, 250.0])
    data = json.loads(json.dumps(h.to_dict()))
    back = LogHistogram.from_dict(data)
    assert np.array_equal(back.counts, h.counts) and back.total == h.total
    assert len(data["counts"]) == 3  # sparse


def test_layout() -> None:
    h = LogHistogram()
    assert h.buckets == math.ceil(math.log(1e9) / math.log(1.01 / 0.99))
    assert h.counts.size == h.buckets + 2
    with pytest.raises(ValueError):
        LogHistogram(relative_accuracy=0.0)
    with pytest.raises(ValueError):
        LogHistogram(counts=np.zeros(3, dtype=np.int64))


def test_edges() -> None:
    empty = LogHistogram()
    assert math.isnan(empty.quantile(0.5)) and math.isnan(empty.mean) and empty.n == 0
    one = LogHistogram().add([42.0])
    assert one.quantile(0.0) == one.quantile(1.0) == pytest.approx(42.0, rel=0.01)
    extremes = LogHistogram().add([0.0, 1e-9, 5e6])
    assert extremes.quantile(0.0) == 1e-3  # at or below min_value
    assert extremes.quantile(1.0) == 1e6  # overflow reported as max_value
    with pytest.raises(ValueError):
        LogHistogram().add([-1.0])
    with pytest.raises(ValueError):
        LogHistogram().add([math.nan])
    with pytest.raises(ValueError):
        one.quantile(1.5)
