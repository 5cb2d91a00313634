"""Latency quantile intervals and exceedance counts from the log histogram."""

from __future__ import annotations

import math

import numpy as np

from gateway.analysis.stats import LogHistogram


def test_the_p99_interval_covers_the_true_p99() -> None:
    rng = np.random.default_rng(4)
    true_p99 = float(np.quantile(rng.gamma(4.0, 0.1, 2_000_000), 0.99))
    runs, covered = 400, 0
    for _ in range(runs):
        interval = LogHistogram().add(rng.gamma(4.0, 0.1, 2000)).quantile_interval(0.99, 0.95)
        covered += interval.low <= true_p99 <= interval.high
    assert covered / runs >= 0.93  # 95% nominal, minus the sketch's 1% and Monte Carlo noise


def test_too_few_values_have_no_upper_bound() -> None:
    interval = LogHistogram().add(np.linspace(1, 2, 50)).quantile_interval(0.99)
    assert math.isinf(interval.high) and "too few" in interval.note
    assert math.isnan(LogHistogram().quantile_interval(0.5).value)


def test_count_above_errs_low_by_at_most_one_bucket() -> None:
    values = np.linspace(0.01, 10.0, 10_000)
    h = LogHistogram().add(values)
    for x in (0.05, 0.5, 1.0, 3.3, 9.9):
        exact = int((values > x).sum())
        got = h.count_above(x)
        assert exact * 0.97 - 5 <= got <= exact
    assert h.count_above(1e9) == 0 and h.count_above(0.0) == h.n
