from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.stats import mannwhitneyu, norm

from gateway.analysis.stats.auc import delong_test, roc_auc


def _direct_delong(
    y: NDArray[np.int_], scores: list[NDArray[np.float64]]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """DeLong et al. (1988) written out with the O(m n) kernel psi(X, Y) = 1, 1/2, 0."""
    v10s, v01s = [], []
    for s in scores:
        x, z = s[y == 1], s[y == 0]
        psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
        v10s.append(psi.mean(axis=1))
        v01s.append(psi.mean(axis=0))
    m, n = len(v10s[0]), len(v01s[0])
    aucs = np.array([v.mean() for v in v10s])
    cov = np.atleast_2d(np.cov(np.array(v10s))) / m + np.atleast_2d(np.cov(np.array(v01s))) / n
    return aucs, cov


def _data(
    seed: int, n: int = 400
) -> tuple[NDArray[np.int_], NDArray[np.float64], NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    latent = y * 1.0 + rng.normal(size=n)
    s1 = np.round(latent + rng.normal(scale=0.5, size=n), 1)  # rounded: many ties
    s2 = np.round(latent + rng.normal(scale=0.9, size=n), 1)
    return y, s1, s2


def test_auc_equals_mann_whitney() -> None:
    y, s1, _ = _data(1)
    u = mannwhitneyu(s1[y == 1], s1[y == 0]).statistic
    assert roc_auc(y, s1).value == pytest.approx(u / ((y == 1).sum() * (y == 0).sum()))


def test_hanley_mcneil_1982_ct_ratings() -> None:
    # Hanley & McNeil (1982), Radiology 143:29, Table 1: 109 CT images rated 1..5;
    # 58 normal (33, 6, 6, 11, 2) and 51 abnormal (3, 2, 2, 11, 33); the paper's area is 0.893.
    ratings = np.arange(1, 6)
    normal = np.repeat(ratings, [33, 6, 6, 11, 2])
    abnormal = np.repeat(ratings, [3, 2, 2, 11, 33])
    y = np.r_[np.zeros(normal.size), np.ones(abnormal.size)]
    e = roc_auc(y, np.r_[normal, abnormal])
    assert e.value == pytest.approx(0.893, abs=5e-4)
    assert e.high - e.value == pytest.approx(1.96 * 0.032, abs=0.01)  # paper's SE 0.032


def test_delong_matches_the_direct_computation() -> None:
    y, s1, s2 = _data(2)
    aucs, cov = _direct_delong(y, [s1, s2])
    r = delong_test(y, s1, s2)
    assert (r.first.value, r.second.value) == pytest.approx(tuple(aucs))
    se = math.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert r.difference.value == pytest.approx(aucs[0] - aucs[1])
    assert r.difference.high - r.difference.value == pytest.approx(norm.ppf(0.975) * se)
    assert r.difference.p_value == pytest.approx(2 * norm.sf(abs(aucs[0] - aucs[1]) / se))
    assert r.first.high - r.first.value == pytest.approx(norm.ppf(0.975) * math.sqrt(cov[0, 0]))
    single = roc_auc(y, s2)
    assert single.value == pytest.approx(aucs[1])


def test_delong_is_fast_for_large_n() -> None:
    rng = np.random.default_rng(3)
    n = 200_000
    y = rng.integers(0, 2, size=n)
    s1, s2 = y + rng.normal(size=n), y + rng.normal(size=n) * 1.1
    r = delong_test(y, s1, s2)
    assert r.difference.p_value is not None and r.difference.low < r.difference.value


def test_one_class_only_is_undefined() -> None:
    e = roc_auc([1, 1, 1], [0.2, 0.5, 0.9])
    assert not e.defined and "one class" in e.note
    r = delong_test([0, 0], [0.1, 0.2], [0.3, 0.4])
    assert not r.difference.defined
    assert not roc_auc([], []).defined


def test_single_row_of_a_class_has_no_interval() -> None:
    e = roc_auc([1, 0, 0], [0.9, 0.5, 0.1])
    assert e.value == 1.0 and math.isnan(e.low) and "one row" in e.note


def test_identical_and_perfect_models() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    same = delong_test(y, s, s)
    assert (same.difference.value, same.difference.p_value) == (0.0, 1.0)
    perfect = roc_auc(y, y.astype(float))
    assert (perfect.value, perfect.low, perfect.high) == (1.0, 1.0, 1.0)


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        roc_auc([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError):
        roc_auc([0, 1], [0.1, math.nan])
    with pytest.raises(ValueError):
        delong_test([0, 1], [0.1, 0.2], [0.1])
