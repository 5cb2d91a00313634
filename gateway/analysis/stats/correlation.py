"""Pearson correlation from mergeable co-moments (e.g. a model's score vs a business value)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from gateway.analysis.stats.interval import Estimate, check_confidence, normal_p_value, z_value


@dataclass(frozen=True, slots=True)
class CoMoments:
    """n, means, sums of squared deviations and the co-deviation of paired x, y values.

    Merges like `MeanVariance` (Chan et al. 1979, extended to the co-moment as in Pebay 2008,
    "Formulas for robust, one-pass parallel computation of covariances", Sandia SAND2008-6212).
    """

    n: int = 0
    mean_x: float = 0.0
    mean_y: float = 0.0
    m2_x: float = 0.0
    m2_y: float = 0.0
    c_xy: float = 0.0

    @classmethod
    def of(cls, x: ArrayLike, y: ArrayLike) -> CoMoments:
        a = np.asarray(x, dtype=np.float64)
        b = np.asarray(y, dtype=np.float64)
        if a.shape != b.shape or a.ndim != 1:
            raise ValueError(f"need two 1-D arrays of one length, got {a.shape} and {b.shape}")
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            raise ValueError("values must be finite")
        if a.size == 0:
            return cls()
        da, db = a - a.mean(), b - b.mean()
        return cls(
            int(a.size),
            float(a.mean()),
            float(b.mean()),
            float(da @ da),
            float(db @ db),
            float(da @ db),
        )

    @classmethod
    def from_sums(
        cls, n: int, sx: float, sy: float, sxx: float, syy: float, sxy: float
    ) -> CoMoments:
        """From raw sums (SQL); loses precision when means are large against the spread."""
        if n <= 0:
            return cls()
        mx, my = sx / n, sy / n
        return cls(n, mx, my, max(0.0, sxx - sx * mx), max(0.0, syy - sy * my), sxy - sx * my)

    def merge(self, other: CoMoments) -> CoMoments:
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        dx, dy = other.mean_x - self.mean_x, other.mean_y - self.mean_y
        w = self.n * other.n / n
        return CoMoments(
            n,
            self.mean_x + dx * other.n / n,
            self.mean_y + dy * other.n / n,
            self.m2_x + other.m2_x + dx * dx * w,
            self.m2_y + other.m2_y + dy * dy * w,
            self.c_xy + other.c_xy + dx * dy * w,
        )


def pearson(moments: CoMoments, confidence: float = 0.95) -> Estimate:
    """Pearson's r with Fisher's z interval and the t-test of r = 0 (as scipy.stats.pearsonr).

    Fisher, R. A. (1915). "Frequency distribution of the values of the correlation coefficient
    in samples from an indefinitely large population". Biometrika 10, 507-521. Undefined below
    two pairs or when x or y is constant; the interval needs four pairs.
    """
    check_confidence(confidence)
    n = moments.n
    if n < 2:
        return Estimate.undefined(confidence, "need two pairs")
    if moments.m2_x == 0 or moments.m2_y == 0:
        return Estimate.undefined(confidence, "constant input: correlation is undefined")
    r = max(-1.0, min(1.0, moments.c_xy / math.sqrt(moments.m2_x * moments.m2_y)))
    if abs(r) == 1.0:
        return Estimate(r, r, r, confidence, 0.0, "perfect correlation")
    p = normal_p_value(r * math.sqrt((n - 2) / (1 - r * r)), df=n - 2) if n > 2 else 1.0
    if n < 4:
        return Estimate(r, math.nan, math.nan, confidence, p, "need four pairs for an interval")
    half = z_value(confidence) / math.sqrt(n - 3)
    z = math.atanh(r)
    return Estimate(r, math.tanh(z - half), math.tanh(z + half), confidence, p)
