from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import poisson_binom

from gateway.analysis.stats.cbpe import (
    calibration_check,
    expected_accuracy,
    expected_accuracy_from_sums,
    prediction_confidence,
)


def test_prediction_confidence() -> None:
    assert prediction_confidence([0.9, 0.2, 0.5]) == pytest.approx([0.9, 0.8, 0.5])
    assert prediction_confidence([0.9, 0.2], predictions=[0, 1]) == pytest.approx([0.1, 0.2])
    p = [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]
    assert prediction_confidence(p) == pytest.approx([0.7, 0.6])
    assert prediction_confidence(p, predictions=[1, 1]) == pytest.approx([0.2, 0.3])


def test_expected_accuracy_variance_is_poisson_binomial() -> None:
    c = np.random.default_rng(1).uniform(0.5, 1.0, size=300)
    e = expected_accuracy(c)
    dist = poisson_binom(c)
    assert e.value == pytest.approx(dist.mean() / c.size)
    half = (e.high - e.low) / 2
    assert half == pytest.approx(1.959964 * math.sqrt(dist.var()) / c.size, rel=1e-6)
    # The normal interval agrees with the exact Poisson-binomial quantiles to about a row.
    cdf = dist.cdf(np.arange(c.size + 1))  # (its ppf does not take 300 parameters)
    lo, hi = np.searchsorted(cdf, [0.025, 0.975]) / c.size
    assert (e.low, e.high) == pytest.approx((lo, hi), abs=1.5 / c.size)


def test_expected_accuracy_edges_and_sums() -> None:
    assert not expected_accuracy([]).defined
    certain = expected_accuracy([1.0, 1.0])
    assert (certain.value, certain.low, certain.high) == (1.0, 1.0, 1.0)
    c = np.array([0.6, 0.9, 0.8])
    from_sums = expected_accuracy_from_sums(3, float(c.sum()), float((c * (1 - c)).sum()))
    assert from_sums == expected_accuracy(c)
    with pytest.raises(ValueError):
        expected_accuracy([1.2])


def test_calibrated_model_passes_and_overconfident_one_fails() -> None:
    rng = np.random.default_rng(2017)
    c = rng.uniform(0.5, 1.0, size=5_000)
    correct = rng.uniform(size=c.size) < c  # calibrated by construction
    good = calibration_check(c, correct)
    assert good.difference.p_value is not None and good.difference.p_value > 0.01
    assert good.ece < 0.03
    assert good.expected == pytest.approx(c.mean()) and good.observed == correct.mean()
    assert sum(b.n for b in good.bins) == c.size and all(b.low >= 0.5 for b in good.bins)
    overconfident = rng.uniform(size=c.size) < c - 0.1
    bad = calibration_check(c, overconfident)
    assert bad.difference.p_value is not None and bad.difference.p_value < 1e-6
    assert bad.difference.high < 0 and bad.ece > 0.05


def test_calibration_edges() -> None:
    none = calibration_check([], [])
    assert math.isnan(none.expected) and not none.difference.defined and none.bins == ()
    single = calibration_check([0.8], [True])
    assert single.observed == 1.0 and len(single.bins) == 1 and single.ece == pytest.approx(0.2)
    with pytest.raises(ValueError):
        calibration_check([0.8], [True, False])
