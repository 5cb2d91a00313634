from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chisquare, entropy, ks_2samp

from gateway.analysis.stats.drift import (
    PSI_EPSILON,
    bin_counts,
    drift_against_reference,
    ks_binned,
    psi,
    psi_level,
)


def test_bin_rule_at_edges_and_outside() -> None:
    edges = [0.0, 1.0, 2.0, 3.0]
    values = [-5.0, 0.0, 0.5, 1.0, 2.999, 3.0, 10.0, math.nan]
    # bin 0: -5 (below), 0, 0.5; bin 1: 1.0; bin 2: 2.999, 3.0 (last edge), 10 (above); NaN dropped
    assert bin_counts(values, edges).tolist() == [3, 1, 3]
    assert bin_counts([], edges).tolist() == [0, 0, 0]
    with pytest.raises(ValueError):
        bin_counts([1.0], [1.0, 1.0])


def test_psi_by_hand_and_as_symmetric_kl() -> None:
    a, e = np.array([0.3, 0.3, 0.4]), np.array([0.25, 0.35, 0.4])
    by_hand = 0.05 * math.log(0.3 / 0.25) + (-0.05) * math.log(0.3 / 0.35)
    assert psi(a, e) == pytest.approx(by_hand)
    # PSI is the J-divergence KL(a||e) + KL(e||a) (Yurdakul 2018).
    assert psi(a, e) == pytest.approx(entropy(a, e) + entropy(e, a))
    assert psi([30, 30, 40], [25, 35, 40]) == pytest.approx(by_hand)  # counts normalise


def test_psi_with_empty_bins_uses_epsilon() -> None:
    value = psi([0, 50, 50], [0.2, 0.4, 0.4])
    expected = (PSI_EPSILON - 0.2) * math.log(PSI_EPSILON / 0.2) + 2 * 0.1 * math.log(0.5 / 0.4)
    assert value == pytest.approx(expected)
    assert math.isnan(psi([0, 0], [1, 1]))
    with pytest.raises(ValueError):
        psi([1, 2], [1, 2, 3])


@pytest.mark.parametrize(
    ("value", "level"),
    [(0.0, "none"), (0.0999, "none"), (0.1, "moderate"), (0.2499, "moderate"), (0.25, "major")],
)
def test_levels(value: float, level: str) -> None:
    assert psi_level(value) == level
    assert psi_level(math.nan) is None


def test_drift_against_training_deciles() -> None:
    rng = np.random.default_rng(2018)
    train = rng.normal(size=50_000)
    edges = np.quantile(train, np.linspace(0, 1, 11))
    fractions = np.full(10, 0.1)
    same = drift_against_reference(bin_counts(rng.normal(size=5_000), edges), fractions)
    assert same.level == "none" and same.chi_square.p_value > 0.001
    counts = bin_counts(rng.normal(0.5, 1.0, size=5_000), edges)
    shifted = drift_against_reference(counts, fractions)
    assert shifted.level in ("moderate", "major") and shifted.chi_square.p_value < 1e-10
    assert shifted.chi_square.statistic == pytest.approx(chisquare(counts).statistic)
    assert shifted.n == 5_000


def test_binned_ks_equals_raw_ks_on_grid_data() -> None:
    # Integer-valued scores with one bin per value: binning loses nothing, so D and the
    # asymptotic p-value equal scipy's on the raw data.
    rng = np.random.default_rng(5)
    a = rng.binomial(40, 0.50, size=3_000)
    b = rng.binomial(40, 0.52, size=2_000)
    edges = np.arange(-0.5, 41.5)
    r = ks_binned(np.histogram(a, edges)[0], np.histogram(b, edges)[0])
    ref = ks_2samp(a, b, method="asymp")
    assert r.statistic == pytest.approx(ref.statistic)
    assert r.p_value == pytest.approx(ref.pvalue)
    assert (r.n_first, r.n_second) == (3_000, 2_000)


def test_binned_ks_is_close_on_fine_bins() -> None:
    rng = np.random.default_rng(6)
    a, b = rng.beta(2, 5, size=4_000), rng.beta(2.2, 5, size=4_000)
    edges = np.linspace(0, 1, 501)
    r = ks_binned(np.histogram(a, edges)[0], np.histogram(b, edges)[0])
    ref = ks_2samp(a, b, method="asymp")
    assert r.statistic <= ref.statistic
    assert r.statistic == pytest.approx(ref.statistic, abs=0.01)


def test_binned_ks_edges() -> None:
    assert math.isnan(ks_binned([0, 0], [1, 2]).statistic)
    tiny = ks_binned([1, 0], [0, 1])  # exact below n1 n2 = 10,000
    assert tiny.statistic == 1.0 and tiny.p_value == pytest.approx(ks_2samp([0], [1]).pvalue)
    small = ks_binned([3, 5, 2, 0], [0, 2, 4, 6])
    ref = ks_2samp(np.repeat(np.arange(4), [3, 5, 2, 0]), np.repeat(np.arange(4), [0, 2, 4, 6]))
    assert (small.statistic, small.p_value) == pytest.approx((ref.statistic, ref.pvalue))
    same = ks_binned([5, 5], [10, 10])
    assert (same.statistic, same.p_value) == (0.0, 1.0)
    with pytest.raises(ValueError):
        ks_binned([1, 2], [1, 2, 3])
