"""Latency quantiles from a log-bucketed histogram with fixed boundaries.

Fixed boundaries make histograms from different replicas, batches or days add bucket by
bucket, and serialise as a sparse {bucket: count} map, so p50/p95/p99 over millions of
requests are one streaming pass. Error and timeout rates are proportions: see `wilson`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import binom

from gateway.analysis.stats.interval import Estimate, check_confidence


@dataclass(frozen=True, eq=False)
class LogHistogram:
    """Counts of values in buckets (min * g^(i-1), min * g^i], g = (1 + a) / (1 - a).

    Masson, C., Rim, J. E. & Lee, H. K. (2019). "DDSketch: A Fast and Fully-Mergeable Quantile
    Sketch with Relative-Error Guarantees". PVLDB 12(12), 2195-2205. Any quantile between
    `min_value` and `max_value` is returned within relative error `relative_accuracy` (a = 1%
    by default). Values <= `min_value` share bucket 0 (reported as `min_value`), values above
    `max_value` the overflow bucket (reported as `max_value`). Defaults suit milliseconds:
    1 us to ~17 minutes in ~1,040 buckets. `add` and `merge` return new histograms.
    """

    relative_accuracy: float = 0.01
    min_value: float = 1e-3
    max_value: float = 1e6
    counts: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    total: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.relative_accuracy < 1 or not 0 < self.min_value < self.max_value:
            raise ValueError("need 0 < relative_accuracy < 1 and 0 < min_value < max_value")
        size = self.buckets + 2
        if self.counts.size == 0:
            object.__setattr__(self, "counts", np.zeros(size, dtype=np.int64))
        elif self.counts.shape != (size,):
            raise ValueError(f"counts must have {size} buckets, got {self.counts.shape}")

    @property
    def gamma(self) -> float:
        return (1 + self.relative_accuracy) / (1 - self.relative_accuracy)

    @property
    def buckets(self) -> int:
        """Number of log buckets between min_value and max_value (excluding 0 and overflow)."""
        return math.ceil(math.log(self.max_value / self.min_value) / math.log(self.gamma))

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def mean(self) -> float:
        """Exact mean of the values added (NaN when empty)."""
        return self.total / self.n if self.n else math.nan

    def add(self, values: ArrayLike) -> LogHistogram:
        x = np.asarray(values, dtype=np.float64).ravel()
        if not np.all(np.isfinite(x)) or np.any(x < 0):
            raise ValueError("values must be finite and >= 0")
        index = np.zeros(x.size, dtype=np.int64)
        above = x > self.min_value
        log_ratio = np.log(x[above] / self.min_value) / math.log(self.gamma)
        index[above] = np.minimum(np.ceil(log_ratio).astype(np.int64), self.buckets + 1)
        index[x > self.max_value] = self.buckets + 1
        counts = self.counts + np.bincount(index, minlength=self.counts.size)
        return self._with(counts, self.total + float(x.sum()))

    def merge(self, other: LogHistogram) -> LogHistogram:
        if self._layout() != other._layout():
            raise ValueError(f"cannot merge histograms {self._layout()} and {other._layout()}")
        return self._with(self.counts + other.counts, self.total + other.total)

    def quantile(self, q: float) -> float:
        """The value of rank floor(q (n - 1)) (numpy's method="lower"); NaN when empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be in [0, 1], got {q}")
        n = self.n
        if n == 0:
            return math.nan
        rank = math.floor(q * (n - 1))
        i = int(np.searchsorted(np.cumsum(self.counts), rank, side="right"))
        if i == 0:
            return self.min_value
        if i > self.buckets:
            return self.max_value
        return min(2 * self.min_value * self.gamma**i / (self.gamma + 1), self.max_value)

    def count_above(self, x: float) -> int:
        """Values surely above ``x``: those in buckets whose lower edge is at least ``x`` (the
        bucket holding ``x`` is left out, so the count errs low by at most one bucket)."""
        if self.n == 0 or x >= self.max_value:
            return int(self.counts[-1]) if x < self.max_value else 0
        if x <= self.min_value:
            return self.n - int(self.counts[0])
        i = math.ceil(math.log(x / self.min_value) / math.log(self.gamma))  # bucket of x
        return int(self.counts[i + 1:].sum())

    def quantile_interval(self, q: float, confidence: float = 0.95) -> Estimate:
        """The q-quantile with a distribution-free interval from order statistics.

        The ranks of the bounds are binomial quantiles: the true q-quantile lies between the
        order statistics of ranks ``binom.ppf((1 - c)/2, n, q)`` and
        ``binom.ppf((1 + c)/2, n, q)`` with probability at least c (Hahn, G. J. & Meeker,
        W. Q. (1991). "Statistical Intervals", section 5.2; no assumption on the
        distribution). Read off the histogram, each bound carries its relative accuracy too.
        Undefined when empty; a bound beyond the sample is +inf (too few values).
        """
        check_confidence(confidence)
        n = self.n
        if n == 0:
            return Estimate.undefined(confidence, "no values")
        tail = (1.0 - confidence) / 2
        lo_rank = int(binom.ppf(tail, n, q)) - 1
        hi_rank = int(binom.ppf(1.0 - tail, n, q))
        low = self.quantile(max(lo_rank, 0) / max(n - 1, 1)) if lo_rank >= 0 else 0.0
        high = self.quantile(hi_rank / max(n - 1, 1)) if hi_rank <= n - 1 else math.inf
        note = "" if hi_rank <= n - 1 else "too few values for an upper bound"
        return Estimate(self.quantile(q), low, high, confidence, None, note)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the layout and the non-empty buckets."""
        nonzero = np.flatnonzero(self.counts)
        return {
            "relative_accuracy": self.relative_accuracy,
            "min_value": self.min_value,
            "max_value": self.max_value,
            "total": self.total,
            "counts": {str(int(i)): int(self.counts[i]) for i in nonzero},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogHistogram:
        empty = cls(data["relative_accuracy"], data["min_value"], data["max_value"])
        counts = empty.counts.copy()
        for key, value in data["counts"].items():
            counts[int(key)] = int(value)
        return empty._with(counts, float(data["total"]))

    def _layout(self) -> tuple[float, float, float]:
        return (self.relative_accuracy, self.min_value, self.max_value)

    def _with(self, counts: NDArray[np.int64], total: float) -> LogHistogram:
        return LogHistogram(
            self.relative_accuracy, self.min_value, self.max_value, counts.astype(np.int64), total
        )
