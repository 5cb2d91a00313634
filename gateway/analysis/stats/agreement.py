"""How often two models give the same answer: the K x K flip matrix, agreement and kappa.

Rows are the first model's class, columns the second's; the matrix is all a report needs to
show agreement, the flips between each pair of classes, and chance-corrected agreement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from gateway.analysis.stats.interval import Estimate, check_confidence, normal_estimate
from gateway.analysis.stats.proportions import wilson


def flip_matrix(
    first: ArrayLike, second: ArrayLike, classes: Sequence[object]
) -> NDArray[np.int64]:
    """Counts of (first's class, second's class) over rows, in the order of `classes`.

    A class outside `classes` is an error: list every class the models can answer.
    """
    a, b = np.asarray(first), np.asarray(second)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two 1-D arrays of one length, got {a.shape} and {b.shape}")
    k = len(classes)
    lookup = {c: i for i, c in enumerate(classes)}
    try:
        ia = np.fromiter((lookup[v] for v in a.tolist()), dtype=np.int64, count=a.size)
        ib = np.fromiter((lookup[v] for v in b.tolist()), dtype=np.int64, count=b.size)
    except KeyError as exc:
        raise ValueError(f"class {exc.args[0]!r} is not in classes") from None
    return np.bincount(ia * k + ib, minlength=k * k).reshape(k, k).astype(np.int64)


def agreement(matrix: ArrayLike, confidence: float = 0.95) -> Estimate:
    """Share of rows on which the two models agree (the diagonal), Wilson interval."""
    m = _square(matrix)
    return wilson(int(np.trace(m)), int(m.sum()), confidence)


def cohens_kappa(matrix: ArrayLike, confidence: float = 0.95) -> Estimate:
    """Cohen's kappa (agreement beyond chance) with its large-sample interval and p-value.

    Cohen, J. (1960). "A coefficient of agreement for nominal scales". Educational and
    Psychological Measurement 20, 37-46; standard errors of Fleiss, J. L., Cohen, J. &
    Everitt, B. S. (1969). "Large sample standard errors of kappa and weighted kappa".
    Psychological Bulletin 72, 323-327 (the interval uses the SE under the alternative, the
    p-value of kappa = 0 the SE under the null, as statsmodels' cohens_kappa). Undefined
    without rows or when chance agreement is 1 (both models always give one same class).
    """
    check_confidence(confidence)
    m = _square(matrix).astype(np.float64)
    n = float(m.sum())
    if n == 0:
        return Estimate.undefined(confidence, "no observations")
    p = m / n
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    observed, chance = float(np.trace(p)), float(rows @ cols)
    if chance == 1.0:
        return Estimate.undefined(confidence, "one class only: kappa is undefined")
    kappa = (observed - chance) / (1 - chance)
    term_a = float((np.diag(p) * (1 - (rows + cols) * (1 - kappa)) ** 2).sum())
    off = p * (rows[None, :] + cols[:, None]) ** 2
    np.fill_diagonal(off, 0.0)
    term_b = (1 - kappa) ** 2 * float(off.sum())
    term_c = (kappa - chance * (1 - kappa)) ** 2
    var = max(0.0, (term_a + term_b - term_c) / ((1 - chance) ** 2 * n))
    var0 = (chance + chance**2 - float((rows * cols * (rows + cols)).sum())) / (
        (1 - chance) ** 2 * n
    )
    e = normal_estimate(kappa, math.sqrt(var), confidence)
    p_null = normal_estimate(kappa, math.sqrt(max(var0, 0.0)), confidence).p_value
    return Estimate(kappa, e.low, e.high, confidence, p_null, e.note)


def _square(matrix: ArrayLike) -> NDArray[np.int64]:
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0 or np.any(m < 0):
        raise ValueError(f"need a non-empty square matrix of counts, got shape {m.shape}")
    return m.astype(np.int64)
