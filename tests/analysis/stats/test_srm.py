from __future__ import annotations

import math

import pytest
from scipy.stats import chisquare

from gateway.analysis.stats.chisquare import chi_square_gof
from gateway.analysis.stats.srm import SRM_MIN_EXPECTED, sample_ratio_mismatch


@pytest.mark.parametrize(
    ("observed", "weights"),
    [([5060, 4940], [0.5, 0.5]), ([980, 9100], [1, 9]), ([300, 310, 290, 350], [1, 1, 1, 1])],
)
def test_goodness_of_fit_matches_scipy(observed: list[int], weights: list[float]) -> None:
    total = sum(observed)
    ref = chisquare(observed, [total * w / sum(weights) for w in weights])
    fit = chi_square_gof(observed, weights)
    assert (fit.statistic, fit.p_value) == pytest.approx((ref.statistic, ref.pvalue))
    assert fit.df == len(observed) - 1


def test_goodness_of_fit_edges() -> None:
    empty = chi_square_gof([0, 0], [1, 1])
    assert math.isnan(empty.p_value) and empty.note == "no observations"
    single = chi_square_gof([7], [1])
    assert (single.statistic, single.p_value, single.df) == (0.0, 1.0, 0)
    dropped = chi_square_gof([50, 50, 0], [1, 1, 0])
    assert dropped.df == 1 and dropped.p_value == pytest.approx(1.0)
    impossible = chi_square_gof([50, 50, 3], [1, 1, 0])
    assert (impossible.statistic, impossible.p_value) == (math.inf, 0.0)
    with pytest.raises(ValueError):
        chi_square_gof([1, 2], [0, 0])
    with pytest.raises(ValueError):
        chi_square_gof([1, -2], [1, 1])


def test_balanced_traffic_is_not_flagged() -> None:
    r = sample_ratio_mismatch([5030, 4970], [50, 50])
    assert r.checked and not r.flagged
    assert r.expected == (5000.0, 5000.0)
    assert r.p_value == pytest.approx(chisquare([5030, 4970]).pvalue)


def test_mismatch_is_flagged() -> None:
    # A 10% canary that gets 9% of 100,000 requests: p ~ 1e-25.
    r = sample_ratio_mismatch([91_000, 9_000], [0.9, 0.1])
    assert r.checked and r.flagged and r.p_value < 1e-20


def test_too_few_units_are_not_checked() -> None:
    r = sample_ratio_mismatch([990, 10], [0.99, 0.01])
    assert not r.checked and not r.flagged
    assert "too few units" in r.note and f"{SRM_MIN_EXPECTED:g}" in r.note
    assert not sample_ratio_mismatch([0, 0], [1, 1]).checked


def test_units_in_a_zero_weight_variant_are_flagged() -> None:
    r = sample_ratio_mismatch([500, 500, 1], [1, 1, 0])
    assert r.flagged and r.p_value == 0.0 and "none are expected" in r.note
