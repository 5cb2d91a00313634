"""Paired bootstrap for the difference of any metric of two models on the same rows."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from gateway.analysis.stats.interval import Estimate, check_confidence

DEFAULT_RESAMPLES = 2_000
"""Efron & Tibshirani (1993, ch. 19) ask for at least 1,000 resamples for percentile
intervals; 2,000 keeps the Monte Carlo error of a 95% bound near a tenth of a standard error."""


def paired_bootstrap(
    statistic: Callable[[NDArray[np.intp]], float],
    n: int,
    rng: np.random.Generator,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
) -> Estimate:
    """Percentile bootstrap interval of `statistic`, evaluated on resampled row indices.

    Efron, B. & Tibshirani, R. J. (1993). "An Introduction to the Bootstrap", ch. 13 (the
    percentile interval). `statistic(idx)` must compute the paired difference on rows `idx`,
    e.g. `lambda i: auc(y[i], s1[i]) - auc(y[i], s2[i])`: resampling the same rows for both
    models keeps their correlation, so the interval is that of a paired comparison. The value
    is `statistic(arange(n))`. Resamples where the statistic is NaN (e.g. one class only) are
    dropped and counted in the note. Cost: n_resamples calls on n rows each.
    """
    check_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if n <= 0:
        return Estimate.undefined(confidence, "no observations")
    value = float(statistic(np.arange(n)))
    draws = np.array([statistic(rng.integers(0, n, size=n)) for _ in range(n_resamples)])
    finite = draws[~np.isnan(draws)]
    dropped = n_resamples - finite.size
    note = f"{dropped} of {n_resamples} resamples undefined" if dropped else ""
    if finite.size == 0:
        return Estimate(value, math.nan, math.nan, confidence, None, note)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return Estimate(value, float(low), float(high), confidence, None, note)
