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

from scipy.special import ndtr, ndtri, stdtr, stdtrit

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
        """The value exists; its interval may still be NaN (e.g. a mean of one row)."""
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
    return critical_value(confidence, alternative)


def critical_value(
    confidence: float, alternative: Alternative = "two-sided", df: float = math.inf
) -> float:
    """Normal (df = inf) or Student t quantile for a two- or one-sided interval."""
    check_confidence(confidence)
    check_alternative(alternative)
    tail = 1.0 - confidence
    q = tail / 2 if alternative == "two-sided" else tail
    # scipy.special's ufuncs: the same routines as scipy.stats, without its per-call overhead.
    return float(-ndtri(q) if math.isinf(df) else -stdtrit(df, q))


def normal_p_value(z: float, alternative: Alternative = "two-sided", df: float = math.inf) -> float:
    """P-value of a normal (or t with `df`) statistic; "greater": H1 says effect > null."""
    if math.isnan(z):
        return math.nan
    if alternative == "two-sided":
        return min(1.0, 2.0 * _sf(abs(z), df))
    return _sf(z, df) if alternative == "greater" else _sf(-z, df)


def _sf(x: float, df: float) -> float:
    return float(ndtr(-x) if math.isinf(df) else stdtr(df, -x))


def normal_estimate(
    value: float,
    se: float,
    confidence: float,
    alternative: Alternative = "two-sided",
    null: float = 0.0,
    note: str = "",
    df: float = math.inf,
) -> Estimate:
    """Wald interval `value ± q·se` (q normal, or Student t with `df`), test against `null`.

    With `se == 0` the interval collapses to the point and the p-value is 1 when the value
    equals `null`, else 0 (the data show no variation at all; the note says so).
    """
    q = critical_value(confidence, alternative, df)
    low = value - q * se if alternative != "less" else -math.inf
    high = value + q * se if alternative != "greater" else math.inf
    if se > 0:
        p = normal_p_value((value - null) / se, alternative, df)
    else:
        note = note or "zero variance"
        p = degenerate_p_value(value - null, alternative)
    return Estimate(value, low, high, confidence, p, note)


def degenerate_p_value(delta: float, alternative: Alternative) -> float:
    """P-value when the estimate has no sampling variance: 0 if it lies in H1, else 1."""
    if alternative == "greater":
        return 0.0 if delta > 0 else 1.0
    if alternative == "less":
        return 0.0 if delta < 0 else 1.0
    return 0.0 if delta != 0 else 1.0
