"""Confidence sequences: the formula, its p-value, and A/A peeking simulations.

The simulations are vectorised and seeded: each run is one A/A (or A/B) experiment whose
report is refreshed LOOKS times; a run raises a false alarm when any look excludes 0.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pytest

from gateway.analysis.stats.interval import Alternative
from gateway.analysis.stats.means import difference_of_means
from gateway.analysis.stats.moments import MeanVariance
from gateway.analysis.stats.sequential import (
    DEFAULT_TUNING,
    confidence_sequence_mean,
    cs_difference,
    cs_half_width,
    cs_mean,
    cs_relative_lift,
    cs_rho,
)

LOOKS = 20
STEP = 500  # rows per group between looks: the last look sees 10,000 per group


def test_rho_matches_the_closed_form() -> None:
    # Waudby-Smith et al. (2024): rho = sqrt((-2 ln a + ln(-2 ln a + 1)) / N).
    a = 0.05
    assert cs_rho(0.95, 5000) == pytest.approx(
        math.sqrt((-2 * math.log(a) + math.log(1 - 2 * math.log(a))) / 5000)
    )
    assert cs_rho(0.95, 5000) == pytest.approx(0.0398400668)
    assert cs_rho(0.95, 5000, two_sided=False) == pytest.approx(cs_rho(0.90, 5000))
    with pytest.raises(ValueError):
        cs_rho(0.4, 5000, two_sided=False)
    with pytest.raises(ValueError):
        cs_rho(0.95, 0)


@pytest.mark.parametrize(("sigma", "n"), [(1.0, 50), (0.3, 5000), (7.0, 123_456)])
def test_half_width_matches_the_paper_parameterisation(sigma: float, n: int) -> None:
    # Theorem 2.2 of Waudby-Smith et al. with the paper's (unstandardised) rho_p = rho / sigma:
    # sqrt(2 (n sigma^2 rho_p^2 + 1) / (n^2 rho_p^2) * log(sqrt(n sigma^2 rho_p^2 + 1) / alpha)).
    rho_p = cs_rho(0.95, DEFAULT_TUNING) / sigma
    v = n * sigma**2 * rho_p**2 + 1
    paper = math.sqrt(2 * v / (n**2 * rho_p**2) * math.log(math.sqrt(v) / 0.05))
    assert cs_half_width(sigma**2, n) == pytest.approx(paper)
    # Howard et al. (2021) one-sided normal mixture, V = n sigma^2, mixture precision sigma^2/rho^2.
    rho = cs_rho(0.95, DEFAULT_TUNING, two_sided=False)
    big_v, r = n * sigma**2, sigma**2 / rho**2
    howard = math.sqrt(2 * (big_v + r) * math.log(math.sqrt((big_v + r) / r) / (2 * 0.05) + 1)) / n
    assert cs_half_width(sigma**2, n, alternative="greater") == pytest.approx(howard)


def test_sequence_is_tightest_near_the_tuning_size_and_wider_than_fixed_n() -> None:
    ns = np.arange(100, 50_000, 100)
    scaled = [cs_half_width(1.0, float(n)) * math.sqrt(n) for n in ns]
    assert 4_000 <= ns[int(np.argmin(scaled))] <= 6_500
    assert min(scaled) > 1.96  # the price of looking at every n: ~3.04 sigma/sqrt(n) at best
    assert cs_half_width(1.0, 5000, alternative="greater") < cs_half_width(1.0, 5000)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_p_value_is_below_alpha_exactly_when_the_sequence_excludes_null(
    alternative: Alternative,
) -> None:
    for mean in np.linspace(-0.1, 0.1, 81):
        e = confidence_sequence_mean(
            float(mean), 2.0, 4000, 0.9, alternative=alternative, null=0.01
        )
        assert e.p_value is not None and 0.0 <= e.p_value <= 1.0
        assert (e.p_value < 0.1) == e.excludes(0.01), (mean, e)


def test_one_sided_bounds_and_p_values() -> None:
    g = confidence_sequence_mean(0.05, 1.0, 10_000, alternative="greater")
    assert g.high == math.inf and g.low == pytest.approx(
        0.05 - cs_half_width(1.0, 10_000, alternative="less")
    )
    assert g.p_value is not None and g.p_value < 0.05
    wrong_way = confidence_sequence_mean(-0.05, 1.0, 10_000, alternative="greater")
    assert wrong_way.p_value == 1.0
    huge = confidence_sequence_mean(10.0, 1.0, 1e6, alternative="less", null=20.0)
    assert huge.p_value == 0.0 and huge.low == -math.inf
    tiny = confidence_sequence_mean(1e-200, 1.0, 10.0, alternative="greater")
    assert tiny.p_value == 1.0


def test_edges() -> None:
    assert not confidence_sequence_mean(0.0, 1.0, 0).defined
    assert confidence_sequence_mean(0.0, math.nan, 10).note == "variance unknown"
    assert not cs_mean(MeanVariance.of([1.0])).defined
    assert not cs_difference(MeanVariance.of([1.0, 2.0]), MeanVariance()).defined
    flat = cs_difference(MeanVariance.of([1.0] * 4), MeanVariance.of([1.0] * 4))
    assert (flat.low, flat.high, flat.p_value, flat.note) == (0.0, 0.0, 1.0, "zero variance")
    shifted = cs_mean(MeanVariance.of([2.0] * 4))
    assert shifted.p_value == 0.0
    zero = cs_relative_lift(MeanVariance.of([1.0, 2.0]), MeanVariance.of([0.0, 0.0]))
    assert "baseline mean is 0" in zero.note
    with pytest.raises(ValueError):
        confidence_sequence_mean(0.0, -1.0, 10)


def test_two_sample_variance_is_gbstats_parameterisation() -> None:
    a, b = MeanVariance.of([1.0, 2.0, 4.0, 8.0]), MeanVariance.of([1.0, 3.0, 3.0])
    n = 7
    s2 = n * (a.variance / 4 + b.variance / 3)
    e = cs_difference(a, b, tuning=100)
    assert e.high - e.value == pytest.approx(cs_half_width(s2, n, tuning=100))
    assert e.value == pytest.approx(a.mean - b.mean)
    lift = cs_relative_lift(a, b, tuning=100)
    assert lift.value == pytest.approx(a.mean / b.mean - 1)


# --- simulations -------------------------------------------------------------------------

Runs = list[list[tuple[MeanVariance, MeanVariance]]]
"""Per run, per look: the (candidate, champion) statistics accumulated so far."""


def _binary_looks(rng: np.random.Generator, runs: int, rate_1: float, rate_2: float) -> Runs:
    hits_1 = rng.binomial(STEP, rate_1, size=(runs, LOOKS)).cumsum(axis=1)
    hits_2 = rng.binomial(STEP, rate_2, size=(runs, LOOKS)).cumsum(axis=1)
    n = STEP * np.arange(1, LOOKS + 1)
    return [
        [
            (
                MeanVariance.from_counts(int(hits_1[r, k]), int(n[k])),
                MeanVariance.from_counts(int(hits_2[r, k]), int(n[k])),
            )
            for k in range(LOOKS)
        ]
        for r in range(runs)
    ]


def _skewed_looks(rng: np.random.Generator, runs: int, shift: float = 0.0) -> Runs:
    # Revenue-like rows: exponential with mean 1 (skewed); per-look segment sums merged in.
    rows = rng.exponential(1.0, size=(runs, 2, LOOKS, STEP))
    seg_mean = rows.mean(axis=3)
    seg_m2 = ((rows - seg_mean[..., None]) ** 2).sum(axis=3)
    out = []
    for r in range(runs):
        acc = [MeanVariance(), MeanVariance()]
        looks = []
        for k in range(LOOKS):
            for g in range(2):
                acc[g] = acc[g].merge(
                    MeanVariance(
                        STEP,
                        float(seg_mean[r, g, k]) + (shift if g == 0 else 0.0),
                        float(seg_m2[r, g, k]),
                    )
                )
            looks.append((acc[0], acc[1]))
        out.append(looks)
    return out


def _alarm_rate(
    runs: Runs,
    method: Literal["fixed", "cs", "cs-lift"],
    alternative: Alternative = "two-sided",
    null: float = 0.0,
) -> float:
    """Share of runs in which any look's interval excludes `null`."""
    alarms = 0
    for looks in runs:
        for first, second in looks:
            if method == "cs":
                e = cs_difference(first, second, alternative=alternative, null=null)
            elif method == "cs-lift":
                e = cs_relative_lift(first, second, alternative=alternative, null=null)
            else:
                e = difference_of_means(first, second, alternative=alternative, null=null)
            if e.excludes(null):
                alarms += 1
                break
    return alarms / len(runs)


@pytest.fixture(scope="module")
def aa_binary() -> Runs:
    return _binary_looks(np.random.default_rng(20230101), 400, 0.10, 0.10)


@pytest.fixture(scope="module")
def aa_skewed() -> Runs:
    return _skewed_looks(np.random.default_rng(20230102), 300)


def test_aa_peeking_binary(aa_binary: Runs) -> None:
    fixed = _alarm_rate(aa_binary, "fixed")
    sequence = _alarm_rate(aa_binary, "cs")
    assert fixed > 0.10, fixed  # a 95% interval looked at 20 times alarms far more than 5%
    assert sequence <= 0.05, sequence


def test_aa_peeking_skewed_continuous(
    aa_skewed: Runs,
) -> None:
    fixed = _alarm_rate(aa_skewed, "fixed")
    sequence = _alarm_rate(aa_skewed, "cs")
    lift = _alarm_rate(aa_skewed, "cs-lift")
    assert fixed > 0.10, fixed
    assert sequence <= 0.05, sequence
    assert lift <= 0.05, lift


def test_aa_peeking_one_sided_guardrail(
    aa_binary: Runs,
) -> None:
    # "Candidate is worse": the upper bound of candidate - champion falls below 0.
    fixed = _alarm_rate(aa_binary, "fixed", alternative="less")
    sequence = _alarm_rate(aa_binary, "cs", alternative="less")
    assert fixed > 0.10, fixed
    assert sequence <= 0.05, sequence


def test_non_inferiority_at_the_margin_is_rarely_declared_safe() -> None:
    # The candidate is exactly 1 point worse (10% -> 9%), the margin is 1 point: the gate
    # "low > -margin" must pass at most 5% of runs however often it looks.
    runs = _binary_looks(np.random.default_rng(20230103), 300, 0.09, 0.10)
    fixed = _alarm_rate(runs, "fixed", alternative="greater", null=-0.01)
    sequence = _alarm_rate(runs, "cs", alternative="greater", null=-0.01)
    assert fixed > 0.10, fixed
    assert sequence <= 0.05, sequence


def test_a_real_difference_is_detected() -> None:
    # 10% -> 12% conversion: by 10,000 users per group the sequence excludes 0 in most runs.
    runs = _binary_looks(np.random.default_rng(20230104), 200, 0.12, 0.10)
    assert _alarm_rate(runs, "cs") >= 0.8
    worse = _binary_looks(np.random.default_rng(20230105), 200, 0.08, 0.10)
    assert _alarm_rate(worse, "cs", alternative="less") >= 0.8
    skewed = _skewed_looks(np.random.default_rng(20230106), 100, shift=0.08)
    assert _alarm_rate(skewed, "cs") >= 0.8
