"""Pearson's chi-squared goodness of fit of observed counts to expected fractions."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import chdtrc


@dataclass(frozen=True, slots=True)
class GoodnessOfFit:
    """Chi-squared statistic, p-value, degrees of freedom and the expected counts."""

    statistic: float
    p_value: float
    df: int
    expected: tuple[float, ...]
    note: str = ""


def chi_square_gof(observed: ArrayLike, fractions: ArrayLike) -> GoodnessOfFit:
    """Goodness of fit of `observed` counts to `fractions` (weights; normalised to sum 1).

    Pearson, K. (1900). "On the criterion that a given system of deviations from the probable
    ... can be reasonably supposed to have arisen from random sampling". Philosophical
    Magazine 50, 157-175. Same as `scipy.stats.chisquare`. Cells expected to be empty drop out
    (one degree of freedom less); a count in such a cell makes the statistic infinite and the
    p-value 0. No observations: NaN with a note. The chi-squared approximation wants about 5
    expected per cell (Cochran 1954).
    """
    obs = np.asarray(observed, dtype=np.float64)
    w = np.asarray(fractions, dtype=np.float64)
    if obs.ndim != 1 or obs.shape != w.shape or obs.size == 0:
        raise ValueError(f"need observed and fractions of one length, got {obs.shape}, {w.shape}")
    if np.any(obs < 0) or np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
        raise ValueError("counts and fractions must be >= 0, with some fraction > 0")
    total = float(obs.sum())
    expected = total * w / w.sum()
    expected_t = tuple(float(e) for e in expected)
    live = expected > 0
    df = int(live.sum()) - 1
    if total == 0:
        return GoodnessOfFit(math.nan, math.nan, df, expected_t, "no observations")
    if np.any(obs[~live] > 0):
        return GoodnessOfFit(math.inf, 0.0, df, expected_t, "counts where none are expected")
    if df == 0:
        return GoodnessOfFit(0.0, 1.0, 0, expected_t, "a single category")
    stat = float((((obs[live] - expected[live]) ** 2) / expected[live]).sum())
    return GoodnessOfFit(stat, float(chdtrc(df, stat)), df, expected_t)
