"""Label-free accuracy estimate from a classifier's own probabilities, and its calibration check.

Confidence-Based Performance Estimation (NannyML,
https://nannyml.readthedocs.io/en/stable/how_it_works/performance_estimation.html): if the
model is calibrated, a prediction made with probability c is right with probability c, so
the expected accuracy is the mean of c. It ASSUMES CALIBRATION and NO CONCEPT DRIFT (P(y | x)
unchanged since calibration); covariate shift alone is fine. Check it with
`calibration_check` whenever some labels exist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from gateway.analysis.stats.interval import Estimate, check_confidence, normal_estimate


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    """Rows whose confidence lies in [low, high): mean confidence vs observed accuracy."""

    low: float
    high: float
    n: int
    mean_confidence: float
    accuracy: float


@dataclass(frozen=True, slots=True)
class CalibrationCheck:
    """Observed minus expected accuracy (with a z-test of calibration), ECE and the bins."""

    expected: float
    observed: float
    difference: Estimate
    ece: float
    bins: tuple[ReliabilityBin, ...]


def prediction_confidence(
    probabilities: ArrayLike, predictions: ArrayLike | None = None
) -> NDArray[np.float64]:
    """Per row, the model's probability that its predicted class is right.

    1-D input is P(class 1); without `predictions` the predicted class is p >= 0.5. 2-D input
    is rows x classes; without `predictions` the predicted class is the argmax.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim == 1:
        pred = p >= 0.5 if predictions is None else np.asarray(predictions) == 1
        return np.asarray(np.where(pred, p, 1.0 - p), dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"need (n,) or (n, k) probabilities, got {p.shape}")
    idx = p.argmax(axis=1) if predictions is None else np.asarray(predictions, dtype=np.intp)
    return np.asarray(p[np.arange(p.shape[0]), idx], dtype=np.float64)


def expected_accuracy(confidences: ArrayLike, confidence: float = 0.95) -> Estimate:
    """Expected accuracy (mean confidence) with a Poisson-binomial interval.

    The number of correct rows is a sum of independent Bernoulli(c_i): variance sum c(1 - c)
    (Poisson-binomial; Wang, Y. H. (1993). "On the number of successes in independent trials".
    Statistica Sinica 3, 295-312), normal approximation. The interval covers only which rows
    happen to be right; it says nothing about miscalibration.
    """
    c = _confidences(confidences)
    return expected_accuracy_from_sums(
        c.size, float(c.sum()), float((c * (1 - c)).sum()), confidence
    )


def expected_accuracy_from_sums(
    n: int, sum_confidence: float, sum_variance: float, confidence: float = 0.95
) -> Estimate:
    """As `expected_accuracy`, from n, sum c_i and sum c_i (1 - c_i) (a streaming pass)."""
    check_confidence(confidence)
    if n == 0:
        return Estimate.undefined(confidence, "no predictions")
    e = normal_estimate(sum_confidence / n, math.sqrt(sum_variance) / n, confidence)
    low, high = max(0.0, e.low), min(1.0, e.high)
    return Estimate(e.value, low, high, confidence, None, e.note)


def calibration_check(
    confidences: ArrayLike, correct: ArrayLike, n_bins: int = 10, confidence: float = 0.95
) -> CalibrationCheck:
    """Compare expected (CBPE) with observed accuracy on the rows that have labels.

    `difference` is observed - expected accuracy; its p-value tests calibration-in-the-large
    (z = (correct - sum c) / sqrt(sum c(1 - c)), the Poisson-binomial null). ECE is the
    expected calibration error over `n_bins` equal-width bins (Naeini, Cooper & Hauskrecht
    2015, AAAI; Guo et al. 2017, "On Calibration of Modern Neural Networks", ICML).
    """
    check_confidence(confidence)
    c = _confidences(confidences)
    y = np.asarray(correct, dtype=bool)
    if y.shape != c.shape:
        raise ValueError(f"confidences and correct differ in shape: {c.shape}, {y.shape}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    n = c.size
    if n == 0:
        undefined = Estimate.undefined(confidence, "no labelled rows")
        return CalibrationCheck(math.nan, math.nan, undefined, math.nan, ())
    expected, observed = float(c.mean()), float(y.mean())
    se = math.sqrt(float((c * (1 - c)).sum())) / n
    difference = normal_estimate(observed - expected, se, confidence)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, c, side="right") - 1, 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        rows = which == b
        k = int(rows.sum())
        if k == 0:
            continue
        mean_c, acc = float(c[rows].mean()), float(y[rows].mean())
        bins.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]), k, mean_c, acc))
        ece += k / n * abs(acc - mean_c)
    return CalibrationCheck(expected, observed, difference, ece, tuple(bins))


def _confidences(confidences: ArrayLike) -> NDArray[np.float64]:
    c = np.asarray(confidences, dtype=np.float64)
    if c.ndim != 1 or not np.all((c >= 0) & (c <= 1)):
        raise ValueError("confidences must be a 1-D array of probabilities")
    return c
