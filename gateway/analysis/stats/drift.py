"""Distribution shift of a feature or a score: PSI, chi-squared and a binned two-sample KS.

Reference bins come from the model card: `edges` (k + 1 increasing numbers, e.g. training
deciles) and the training `fractions` of the k bins. Bin i holds edges[i] <= x < edges[i+1];
values below the first edge count in the first bin, values at or above the last edge in the
last bin (so the outer bins are open-ended, as the training deciles are), NaN is dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import ks_2samp, kstwo

from gateway.analysis.stats.chisquare import GoodnessOfFit, chi_square_gof

PSI_EPSILON = 1e-4
"""Floor for a bin's share before the log in PSI, so that an empty bin costs a finite amount."""

PSI_MODERATE = 0.1
"""PSI below this: no significant shift (Siddiqi 2006; Yurdakul 2018)."""

PSI_MAJOR = 0.25
"""PSI at or above this: a major shift; between the two: moderate."""

KS_EXACT_BELOW = 10_000
"""Below this n1 * n2 the binned KS uses the exact p-value (scipy's own switch point)."""

DriftLevel = Literal["none", "moderate", "major"]


@dataclass(frozen=True, slots=True)
class DriftResult:
    """PSI against the reference, its conventional level and the chi-squared test."""

    psi: float
    level: DriftLevel | None
    chi_square: GoodnessOfFit
    n: int


@dataclass(frozen=True, slots=True)
class KsResult:
    """Two-sample Kolmogorov-Smirnov statistic D and its asymptotic p-value."""

    statistic: float
    p_value: float
    n_first: int
    n_second: int
    note: str = ""


def bin_counts(values: ArrayLike, edges: ArrayLike) -> NDArray[np.int64]:
    """Counts per reference bin (see the module docstring for the bin rule)."""
    e = _edges(edges)
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    index = np.clip(np.searchsorted(e, x, side="right") - 1, 0, e.size - 2)
    return np.bincount(index, minlength=e.size - 1).astype(np.int64)


def psi(actual: ArrayLike, expected: ArrayLike, epsilon: float = PSI_EPSILON) -> float:
    """Population Stability Index sum (a_i - e_i) ln(a_i / e_i) over bins.

    Siddiqi, N. (2006). "Credit Risk Scorecards". Wiley, ch. 8; Yurdakul, B. (2018).
    "Statistical Properties of Population Stability Index". PhD thesis, Western Michigan
    University. `actual` and `expected` are counts or fractions (each normalised to sum 1);
    shares below `epsilon` are raised to it. NaN when either side is empty.
    """
    a, e = _shares(actual), _shares(expected)
    if a.shape != e.shape:
        raise ValueError(f"bins differ: {a.shape} and {e.shape}")
    if math.isnan(a[0]) or math.isnan(e[0]):
        return math.nan
    a, e = np.maximum(a, epsilon), np.maximum(e, epsilon)
    return float(((a - e) * np.log(a / e)).sum())


def psi_level(value: float) -> DriftLevel | None:
    """ "none", "moderate" or "major" by the conventional thresholds; None for NaN."""
    if math.isnan(value):
        return None
    if value < PSI_MODERATE:
        return "none"
    return "moderate" if value < PSI_MAJOR else "major"


def drift_against_reference(
    counts: ArrayLike, reference_fractions: ArrayLike, epsilon: float = PSI_EPSILON
) -> DriftResult:
    """PSI and chi-squared goodness of fit of live bin counts against the training fractions.

    With many rows the chi-squared test finds even a harmless shift significant: read PSI for
    the size of the shift, the test for whether it could be noise.
    """
    c = np.asarray(counts, dtype=np.float64)
    value = psi(c, reference_fractions, epsilon)
    fit = chi_square_gof(c, reference_fractions)
    return DriftResult(value, psi_level(value), fit, int(c.sum()))


def ks_binned(counts_first: ArrayLike, counts_second: ArrayLike) -> KsResult:
    """Two-sample KS from two histograms on the same (fine) bins.

    Kolmogorov (1933), Smirnov (1939); as `scipy.stats.ks_2samp`: the exact p-value for small
    samples (n1 n2 < KS_EXACT_BELOW; conservative with ties), else the one-sample Kolmogorov
    distribution at n = n1 n2 / (n1 + n2) (method="asymp"). The CDFs are compared
    only at bin edges, so D can fall short of the raw-data D by at most the mass that the two
    samples put inside one bin: use fine bins (hundreds). Undefined if either side is empty.
    """
    a = np.asarray(counts_first, dtype=np.float64)
    b = np.asarray(counts_second, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"histograms differ in shape: {a.shape} and {b.shape}")
    n1, n2 = int(a.sum()), int(b.sum())
    if n1 == 0 or n2 == 0:
        return KsResult(math.nan, math.nan, n1, n2, "a histogram is empty")
    if n1 * n2 < KS_EXACT_BELOW:
        # Small samples: scipy's exact p-value on the bin indices (the same D).
        k = np.arange(a.size)
        ref = ks_2samp(np.repeat(k, a.astype(np.int64)), np.repeat(k, b.astype(np.int64)))
        return KsResult(float(ref.statistic), float(ref.pvalue), n1, n2)
    d = float(np.max(np.abs(np.cumsum(a) / n1 - np.cumsum(b) / n2)))
    en = round(n1 * n2 / (n1 + n2))
    return KsResult(d, float(np.clip(kstwo.sf(d, en), 0.0, 1.0)), n1, n2)


def _edges(edges: ArrayLike) -> NDArray[np.float64]:
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not np.all(np.diff(e) > 0):
        raise ValueError("edges must be at least two strictly increasing numbers")
    return e


def _shares(x: ArrayLike) -> NDArray[np.float64]:
    v = np.asarray(x, dtype=np.float64)
    if v.ndim != 1 or v.size == 0 or np.any(v < 0):
        raise ValueError("need a 1-D array of non-negative counts or fractions")
    total = v.sum()
    return v / total if total > 0 else np.full(v.shape, math.nan)
