from __future__ import annotations

import math

import pytest
from scipy.stats import norm

from gateway.analysis.stats.interval import Estimate, normal_estimate, normal_p_value, z_value


def test_z_values_match_scipy() -> None:
    assert z_value(0.95) == pytest.approx(1.959963984540054)
    assert z_value(0.95, "greater") == pytest.approx(norm.ppf(0.95))
    assert z_value(0.9, "less") == pytest.approx(norm.ppf(0.9))


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 95.0])
def test_confidence_outside_unit_interval_raises(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence"):
        z_value(confidence)


def test_undefined_estimate_is_nan_with_reason() -> None:
    e = Estimate.undefined(0.95, "no data")
    assert not e.defined
    assert math.isnan(e.low) and math.isnan(e.high) and math.isnan(e.value)
    assert e.note == "no data"
    assert not e.excludes(0.0)


def test_normal_estimate_two_and_one_sided() -> None:
    e = normal_estimate(1.0, 0.5, 0.95)
    assert (e.low, e.high) == pytest.approx((1 - norm.ppf(0.975) * 0.5, 1 + norm.ppf(0.975) * 0.5))
    assert e.p_value == pytest.approx(2 * norm.sf(2.0))
    assert e.excludes(0.0)
    g = normal_estimate(1.0, 0.5, 0.95, "greater")
    assert g.high == math.inf and g.low == pytest.approx(1 - norm.ppf(0.95) * 0.5)
    assert g.p_value == pytest.approx(norm.sf(2.0))
    s = normal_estimate(1.0, 0.5, 0.95, "less")
    assert s.low == -math.inf and s.p_value == pytest.approx(norm.cdf(2.0))


def test_normal_estimate_zero_se() -> None:
    e = normal_estimate(0.0, 0.0, 0.95)
    assert (e.low, e.high, e.p_value) == (0.0, 0.0, 1.0)
    assert e.note == "zero variance"
    assert normal_estimate(0.2, 0.0, 0.95).p_value == 0.0
    assert normal_estimate(0.2, 0.0, 0.95, "less").p_value == 1.0


def test_normal_p_value_nan() -> None:
    assert math.isnan(normal_p_value(math.nan))
