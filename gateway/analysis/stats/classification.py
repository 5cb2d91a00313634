"""Accuracy, log-loss and Brier score of a classifier, as intervals over labelled rows.

Log-loss and Brier are means of per-row terms: `*_terms` returns the terms, so a paired
comparison of two models is `mean_interval(MeanVariance.of(terms_1 - terms_2))` and a streaming
report keeps a `MeanVariance` per model (and one of the differences).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from gateway.analysis.stats.interval import Estimate
from gateway.analysis.stats.means import mean_interval
from gateway.analysis.stats.moments import MeanVariance
from gateway.analysis.stats.proportions import wilson

LOG_LOSS_EPS = 1e-15
"""Probabilities are clipped to [eps, 1 - eps] so that a confident mistake costs ~34.5 nats,
not infinity (the convention of scikit-learn's log_loss before 1.5)."""


def accuracy(labels: ArrayLike, predictions: ArrayLike, confidence: float = 0.95) -> Estimate:
    """Share of rows where the predicted class equals the label, with a Wilson interval.

    Wilson (1927); see `proportions.wilson`. From counts, call `wilson(correct, n)` directly.
    """
    y, pred = _pair(labels, predictions)
    return wilson(int(np.count_nonzero(y == pred)), int(y.size), confidence)


def log_loss_terms(labels: ArrayLike, probabilities: ArrayLike) -> NDArray[np.float64]:
    """Per-row negative log-likelihood -ln p(true class), probabilities clipped.

    Good, I. J. (1952). "Rational decisions". JRSS B 14, 107-114 (the logarithmic score).
    `probabilities` is either 1-D, P(class 1) for 0/1 labels, or 2-D (rows x classes) for
    integer labels 0..K-1.
    """
    p = _true_class_probability(labels, probabilities)
    return -np.log(np.clip(p, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS))


def brier_terms(labels: ArrayLike, probabilities: ArrayLike) -> NDArray[np.float64]:
    """Per-row Brier score: (p - y)^2 for 1-D binary input, sum_k (p_k - [y = k])^2 for 2-D.

    Brier, G. W. (1950). "Verification of forecasts expressed in terms of probability".
    Monthly Weather Review 78, 1-3. The binary form is the usual one (half of Brier's
    two-class sum); the 2-D form is Brier's original multi-class definition.
    """
    y, p = _labels_and_probabilities(labels, probabilities)
    if p.ndim == 1:
        return np.asarray((p - y) ** 2, dtype=np.float64)
    onehot = np.zeros_like(p)
    onehot[np.arange(y.size), y.astype(np.intp)] = 1.0
    return np.asarray(((p - onehot) ** 2).sum(axis=1), dtype=np.float64)


def log_loss(labels: ArrayLike, probabilities: ArrayLike, confidence: float = 0.95) -> Estimate:
    """Mean log-loss with a t interval over rows (undefined without rows)."""
    return mean_interval(MeanVariance.of(log_loss_terms(labels, probabilities)), confidence)


def brier_score(labels: ArrayLike, probabilities: ArrayLike, confidence: float = 0.95) -> Estimate:
    """Mean Brier score with a t interval over rows (undefined without rows)."""
    return mean_interval(MeanVariance.of(brier_terms(labels, probabilities)), confidence)


def _true_class_probability(labels: ArrayLike, probabilities: ArrayLike) -> NDArray[np.float64]:
    y, p = _labels_and_probabilities(labels, probabilities)
    if p.ndim == 1:
        return np.where(y == 1, p, 1.0 - p)
    return np.asarray(p[np.arange(y.size), y.astype(np.intp)], dtype=np.float64)


def _labels_and_probabilities(
    labels: ArrayLike, probabilities: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    if y.ndim != 1 or p.ndim not in (1, 2) or p.shape[0] != y.size:
        raise ValueError(
            f"need labels (n,) and probabilities (n,) or (n, k); got {y.shape}, {p.shape}"
        )
    if not (np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))):
        raise ValueError("probabilities must lie in [0, 1]")
    k = 2 if p.ndim == 1 else p.shape[1]
    if not np.all((y == np.round(y)) & (y >= 0) & (y < k)):
        raise ValueError(f"labels must be integers in 0..{k - 1}")
    return y, p


def _pair(
    labels: ArrayLike, predictions: ArrayLike
) -> tuple[NDArray[np.generic], NDArray[np.generic]]:
    y, pred = np.asarray(labels), np.asarray(predictions)
    if y.shape != pred.shape or y.ndim != 1:
        raise ValueError(f"need two 1-D arrays of one length, got {y.shape} and {pred.shape}")
    return y, pred
