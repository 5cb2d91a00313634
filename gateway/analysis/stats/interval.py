"""The common result type of the statistics package, and the normal quantiles it uses.

Every estimator returns an `Estimate`. When the data cannot support an estimate (no rows,
one class only, a zero baseline) the functions do not raise: they return
`Estimate.undefined(confidence, reason)`, whose numbers are NaN and whose `note` says why, so
that a report can show "not enough data" and a gate can hold. Invalid *arguments* (a negative
count, a confidence outside (0, 1)) are programming errors and raise `ValueError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from scipy.stats import norm

Alternative = Literal["two-sided", "greater", "less"]
"""Which side an interval bounds: "greater" gives [low, inf), "less" gives (-inf, high]."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate with its confidence interval, an optional p-value and a note."""

    value: float
    low: float
    high: float
    confidence: float
    p_value: float | None = None
    note: str = ""

    @classmethod
    def undefined(cls, confidence: float, reason: str) -> Estimate:
        """An estimate that the data cannot support: NaN numbers and the reason."""
        nan = math.nan
        return cls(nan, nan, nan, confidence, nan, reason)

    @property
    def defined(self) -> bool:
        return not math.isnan(self.value)

    def excludes(self, x: float) -> bool:
        """True when the interval lies wholly above or below `x` (False when undefined)."""
        return self.low > x or self.high < x


def check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def check_alternative(alternative: str) -> None:
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be two-sided, greater or less, got {alternative!r}")


def z_value(confidence: float, alternative: Alternative = "two-sided") -> float:
    """The standard normal quantile for a two- or one-sided interval at `confidence`."""
    check_confidence(confidence)
    tail = 1.0 - confidence
    return float(norm.isf(tail / 2 if alternative == "two-sided" else tail))


def normal_p_value(z: float, alternative: Alternative = "two-sided") -> float:
    """P-value of a standard normal statistic `z` ("greater": H1 says the effect is > null)."""
    if math.isnan(z):
        return math.nan
    if alternative == "greater":
        return float(norm.sf(z))
    if alternative == "less":
        return float(norm.cdf(z))
    return float(min(1.0, 2.0 * norm.sf(abs(z))))


def normal_estimate(
    value: float,
    se: float,
    confidence: float,
    alternative: Alternative = "two-sided",
    null: float = 0.0,
    note: str = "",
) -> Estimate:
    """Wald interval `value ± z·se` and the z-test p-value against `null`.

    With `se == 0` the interval collapses to the point and the p-value is 1 when the value
    equals `null`, else 0 (the data show no variation at all; the note says so).
    """
    check_alternative(alternative)
    z = z_value(confidence, alternative)
    low = value - z * se if alternative != "less" else -math.inf
    high = value + z * se if alternative != "greater" else math.inf
    if se > 0:
        p = normal_p_value((value - null) / se, alternative)
    else:
        note = note or "zero variance"
        p = 1.0 if value == null else _degenerate_p(value - null, alternative)
    return Estimate(value, low, high, confidence, p, note)


def _degenerate_p(delta: float, alternative: Alternative) -> float:
    if alternative == "greater":
        return 0.0 if delta > 0 else 1.0
    if alternative == "less":
        return 0.0 if delta < 0 else 1.0
    return 0.0
