"""ROC AUC with DeLong's variance, and DeLong's test for two AUCs on the same rows."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import rankdata

from gateway.analysis.stats.interval import Estimate, check_confidence, normal_estimate, z_value


@dataclass(frozen=True, slots=True)
class AucComparison:
    """AUC of each model and their difference (first - second) with DeLong's interval."""

    first: Estimate
    second: Estimate
    difference: Estimate


def roc_auc(labels: ArrayLike, scores: ArrayLike, confidence: float = 0.95) -> Estimate:
    """ROC AUC (Mann-Whitney, ties counted half) with DeLong's standard error.

    Hanley, J. A. & McNeil, B. J. (1982). "The meaning and use of the area under a receiver
    operating characteristic (ROC) curve". Radiology 143, 29-36; variance of DeLong, DeLong &
    Clarke-Pearson (1988). The Wald interval is clipped to [0, 1]. Undefined unless both
    classes occur; no interval with a single row of either class.
    """
    comparison = _delong(labels, np.asarray(scores, dtype=np.float64)[None, :], confidence)
    return comparison if isinstance(comparison, Estimate) else comparison[0]


def delong_test(
    labels: ArrayLike, first: ArrayLike, second: ArrayLike, confidence: float = 0.95
) -> AucComparison:
    """DeLong's test of AUC(first) = AUC(second) for two models scored on the same rows.

    DeLong, E. R., DeLong, D. M. & Clarke-Pearson, D. L. (1988). "Comparing the areas under two
    or more correlated receiver operating characteristic curves: a nonparametric approach".
    Biometrics 44, 837-845; computed with the O(n log n) midrank algorithm of Sun, X. & Xu, W.
    (2014). "Fast implementation of DeLong's algorithm for comparing the areas under correlated
    receiver operating characteristic curves". IEEE Signal Processing Letters 21, 1389-1393.
    """
    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"score arrays differ in shape: {a.shape} and {b.shape}")
    result = _delong(labels, np.vstack([a, b]), confidence)
    if isinstance(result, Estimate):
        return AucComparison(result, result, result)
    auc_1, auc_2, diff = result
    return AucComparison(auc_1, auc_2, diff)


def _delong(
    labels: ArrayLike, scores: NDArray[np.float64], confidence: float
) -> Estimate | tuple[Estimate, Estimate, Estimate]:
    check_confidence(confidence)
    y = np.asarray(labels)
    if y.ndim != 1 or scores.shape[1] != y.size:
        raise ValueError(f"need labels (n,) and scores (n,); got {y.shape}, {scores.shape[1:]}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    classes = np.unique(y)
    if classes.size > 2 or not np.all(np.isin(classes, [0, 1])):
        raise ValueError(f"labels must be 0/1 (or bool), got classes {classes.tolist()}")
    positive = y == 1
    m, n = int(positive.sum()), int((~positive).sum())
    if m == 0 or n == 0:
        return Estimate.undefined(confidence, "one class only: AUC is undefined")
    pos, neg = scores[:, positive], scores[:, ~positive]
    tz = rankdata(scores, axis=1)
    tx = rankdata(pos, axis=1)
    ty = rankdata(neg, axis=1)
    aucs = (tz[:, positive].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    if m < 2 or n < 2:
        note = "one row of a class: no variance"
        single = [Estimate(float(v), math.nan, math.nan, confidence, None, note) for v in aucs]
        diff = float(aucs[0] - aucs[-1])
        return single[0], single[-1], Estimate(diff, math.nan, math.nan, confidence, math.nan, note)
    v10 = (tz[:, positive] - tx) / n  # per positive: share of negatives scored below it
    v01 = 1.0 - (tz[:, ~positive] - ty) / m  # per negative: share of positives scored above it
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    z = z_value(confidence)
    single = [
        _clipped(float(aucs[k]), math.sqrt(max(cov[k, k], 0.0)), z, confidence) for k in (0, -1)
    ]
    var = cov[0, 0] + cov[-1, -1] - 2 * cov[0, -1]
    diff_est = normal_estimate(float(aucs[0] - aucs[-1]), math.sqrt(max(var, 0.0)), confidence)
    return single[0], single[1], diff_est


def _clipped(auc: float, se: float, z: float, confidence: float) -> Estimate:
    return Estimate(auc, max(0.0, auc - z * se), min(1.0, auc + z * se), confidence)
