"""Adjusted p-values when one report tests many things (metrics, segments, candidates)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def holm(p_values: ArrayLike) -> NDArray[np.float64]:
    """Holm's step-down adjusted p-values (controls the family-wise error rate).

    Holm, S. (1979). "A simple sequentially rejective multiple test procedure". Scandinavian
    Journal of Statistics 6, 65-70. Equals statsmodels' multipletests(method="holm"). NaN
    entries stay NaN and do not count towards the number of tests.
    """
    p, finite = _p_values(p_values)
    q = p[finite]
    m = q.size
    order = np.argsort(q, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * q[order]))
    out = np.full(p.shape, np.nan)
    adjusted = np.empty(m)
    adjusted[order] = stepped
    out[finite] = adjusted
    return out


def benjamini_hochberg(p_values: ArrayLike) -> NDArray[np.float64]:
    """Benjamini-Hochberg step-up adjusted p-values (controls the false discovery rate).

    Benjamini, Y. & Hochberg, Y. (1995). "Controlling the false discovery rate: a practical and
    powerful approach to multiple testing". JRSS B 57, 289-300. Equals statsmodels'
    multipletests(method="fdr_bh"). NaN entries stay NaN and do not count.
    """
    p, finite = _p_values(p_values)
    q = p[finite]
    m = q.size
    order = np.argsort(q, kind="stable")
    scaled = q[order] * m / np.arange(1, m + 1)
    stepped = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    out = np.full(p.shape, np.nan)
    adjusted = np.empty(m)
    adjusted[order] = stepped
    out[finite] = adjusted
    return out


def _p_values(p_values: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"need a 1-D array of p-values, got shape {p.shape}")
    finite = ~np.isnan(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    return p, finite
