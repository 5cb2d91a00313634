"""Mergeable count, mean and sum of squared deviations: the sufficient statistics of a mean."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True, slots=True)
class MeanVariance:
    """n, mean and M2 (sum of squared deviations) of a sample; `add`/`merge` return new ones.

    Chan, T. F., Golub, G. H. & LeVeque, R. J. (1979/1983). "Updating formulae and a pairwise
    algorithm for computing sample variances" / "Algorithms for computing the sample variance:
    analysis and recommendations", The American Statistician 37, 242-247. Merging partial
    results (per batch, per replica, per day) is exact up to rounding and stays stable where
    the textbook sum-of-squares formula cancels catastrophically.
    """

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @classmethod
    def of(cls, values: ArrayLike) -> MeanVariance:
        """The statistics of a 1-D array of finite numbers."""
        x = np.asarray(values, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"need a 1-D array, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("values must be finite: drop or count missing values first")
        if x.size == 0:
            return cls()
        mean = float(x.mean())
        return cls(int(x.size), mean, float(np.sum((x - mean) ** 2)))

    @classmethod
    def from_sums(cls, n: int, total: float, total_squares: float) -> MeanVariance:
        """From n, sum and sum of squares (as a SQL engine returns them).

        Loses precision when the mean is large against the spread (cancellation); prefer
        `of`/`merge` where the rows pass through Python. M2 is floored at 0.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n == 0:
            return cls()
        mean = total / n
        return cls(n, mean, max(0.0, total_squares - total * mean))

    @classmethod
    def from_counts(cls, successes: int, n: int) -> MeanVariance:
        """A 0/1 outcome (conversion, error, correct) from its counts."""
        if n < 0 or not 0 <= successes <= n:
            raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
        if n == 0:
            return cls()
        return cls(n, successes / n, successes * (n - successes) / n)

    def add(self, values: ArrayLike) -> MeanVariance:
        return self.merge(MeanVariance.of(values))

    def merge(self, other: MeanVariance) -> MeanVariance:
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        m2 = self.m2 + other.m2 + delta * delta * self.n * other.n / n
        return MeanVariance(n, mean, m2)

    @property
    def variance(self) -> float:
        """Sample variance (divisor n - 1); NaN below two observations."""
        return self.m2 / (self.n - 1) if self.n > 1 else math.nan

    @property
    def sem(self) -> float:
        """Standard error of the mean; NaN below two observations."""
        return math.sqrt(self.variance / self.n) if self.n > 1 else math.nan
