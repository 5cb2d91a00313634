"""Two models scored on the same requests: the paired 2x2 table, its interval and McNemar's test.

For each labelled request, each model is right or wrong; the four counts below are all the
comparison needs, so a report over millions of rows keeps four integers per model pair.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import binom, chi2

from gateway.analysis.stats.interval import Estimate, check_confidence, z_value
from gateway.analysis.stats.proportions import wilson_bounds

EXACT_BELOW = 25
"""McNemar uses the exact binomial test when there are fewer discordant pairs than this."""


@dataclass(frozen=True, slots=True)
class PairedTable:
    """Counts of requests by (first model right?, second model right?)."""

    both: int = 0
    first_only: int = 0
    second_only: int = 0
    neither: int = 0

    def __post_init__(self) -> None:
        if min(self.both, self.first_only, self.second_only, self.neither) < 0:
            raise ValueError(f"counts must be >= 0: {self}")

    @classmethod
    def from_outcomes(cls, first: ArrayLike, second: ArrayLike) -> PairedTable:
        """Tabulate two equal-length boolean arrays (True = that model was right)."""
        a = np.asarray(first, dtype=bool)
        b = np.asarray(second, dtype=bool)
        if a.shape != b.shape or a.ndim != 1:
            raise ValueError(f"need two 1-D arrays of one length, got {a.shape} and {b.shape}")
        return cls(
            both=int(np.count_nonzero(a & b)),
            first_only=int(np.count_nonzero(a & ~b)),
            second_only=int(np.count_nonzero(~a & b)),
            neither=int(np.count_nonzero(~a & ~b)),
        )

    def merge(self, other: PairedTable) -> PairedTable:
        return PairedTable(
            self.both + other.both,
            self.first_only + other.first_only,
            self.second_only + other.second_only,
            self.neither + other.neither,
        )

    @property
    def n(self) -> int:
        return self.both + self.first_only + self.second_only + self.neither

    @property
    def discordant(self) -> int:
        return self.first_only + self.second_only


@dataclass(frozen=True, slots=True)
class McNemarResult:
    """McNemar's test: statistic (min count if exact, else chi-squared), p-value, method."""

    statistic: float
    p_value: float
    exact: bool
    discordant: int
    note: str = ""


def paired_difference(table: PairedTable, confidence: float = 0.95) -> Estimate:
    """Difference p_first - p_second of two paired proportions (e.g. accuracies).

    Newcombe, R. G. (1998). "Improved confidence intervals for the difference between binomial
    proportions based on paired data". Statistics in Medicine 17, 2635-2650, method 10:
    square-and-add of the two Wilson intervals, corrected by the phi correlation of the table
    (with Newcombe's n/2 continuity adjustment of phi). The value is (first_only -
    second_only) / n. Undefined for an empty table.
    """
    check_confidence(confidence)
    n = table.n
    if n == 0:
        return Estimate.undefined(confidence, "no paired observations")
    z = z_value(confidence)
    x1 = table.both + table.first_only
    x2 = table.both + table.second_only
    p1, p2 = x1 / n, x2 / n
    l1, u1 = wilson_bounds(x1, n, z)
    l2, u2 = wilson_bounds(x2, n, z)
    phi = _newcombe_phi(table)
    d1, e2 = p1 - l1, u2 - p2
    e1, d2 = u1 - p1, p2 - l2
    low = (p1 - p2) - math.sqrt(max(0.0, d1 * d1 - 2 * phi * d1 * e2 + e2 * e2))
    high = (p1 - p2) + math.sqrt(max(0.0, d2 * d2 - 2 * phi * d2 * e1 + e1 * e1))
    note = "" if table.discordant else "no discordant pairs"
    return Estimate((table.first_only - table.second_only) / n, low, high, confidence, None, note)


def _newcombe_phi(t: PairedTable) -> float:
    """Phi of the 2x2 table with Newcombe's continuity adjustment (0 if a margin is empty)."""
    margins = (
        (t.both + t.first_only)
        * (t.second_only + t.neither)
        * (t.both + t.second_only)
        * (t.first_only + t.neither)
    )
    if margins == 0:
        return 0.0
    cross = t.both * t.neither - t.first_only * t.second_only
    if cross > t.n / 2:
        cross_adj = cross - t.n / 2
    elif cross >= 0:
        cross_adj = 0.0
    else:
        cross_adj = float(cross)
    return cross_adj / math.sqrt(margins)


def mcnemar(table: PairedTable, exact: bool | None = None, mid_p: bool = False) -> McNemarResult:
    """McNemar's test that the two models are right equally often.

    McNemar, Q. (1947). "Note on the sampling error of the difference between correlated
    proportions or percentages". Psychometrika 12, 153-157. Only discordant pairs count.
    `exact=None` picks the exact binomial test below `EXACT_BELOW` discordant pairs and the
    continuity-corrected chi-squared test from there on (as
    `statsmodels.stats.contingency_tables.mcnemar`, except that the corrected |b - c| - 1 is
    floored at 0). `mid_p` gives the exact test's mid-p value, which Fagerland, Lydersen &
    Laake (2013, BMC Med Res Methodol 13:91) recommend as less conservative.
    """
    b, c = table.first_only, table.second_only
    m = b + c
    use_exact = m < EXACT_BELOW if exact is None else exact
    if m == 0:
        return McNemarResult(0.0, 1.0, use_exact, 0, "no discordant pairs")
    if use_exact:
        k = min(b, c)
        p = 2.0 * float(binom.cdf(k, m, 0.5))
        if mid_p:
            p -= float(binom.pmf(k, m, 0.5))
        return McNemarResult(float(k), min(1.0, p), True, m)
    stat = max(abs(b - c) - 1, 0) ** 2 / m
    return McNemarResult(float(stat), float(chi2.sf(stat, 1)), False, m)
