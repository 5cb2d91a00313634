"""Numbers in words a product manager reads: percentages, intervals, money, durations."""

from __future__ import annotations

import math

from gateway.analysis.stats import Estimate


def pct(x: float | None, digits: int = 1) -> str:
    """0.9712 -> '97.1%'; None/NaN -> 'n/a'."""
    if x is None or math.isnan(x) or math.isinf(x):
        return "n/a"
    return f"{x * 100:.{digits}f}%"


def signed_pct(x: float | None, digits: int = 1) -> str:
    """A relative change: 0.052 -> '+5.2%'; an unbounded end -> 'unbounded'."""
    if x is None or math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "unbounded"
    return f"{x * 100:+.{digits}f}%"


def points(x: float | None, digits: int = 1) -> str:
    """A difference of two rates in percentage points, signed: -0.021 -> '-2.1 points'."""
    if x is None or math.isnan(x) or math.isinf(x):
        return "n/a"
    return f"{x * 100:+.{digits}f} points"


def pct_interval(e: Estimate, digits: int = 1) -> str:
    """'(95% interval 96.8-97.4%)' for a rate."""
    if math.isnan(e.low) or math.isnan(e.high):
        return "(no interval: too few data)"
    level = round(e.confidence * 100)
    return f"({level}% interval {_p(e.low, digits)} to {pct(e.high, digits)})"


def points_interval(e: Estimate, digits: int = 1) -> str:
    """'(95% interval -3.0 to -1.2 points)' for a difference of rates."""
    if math.isnan(e.low) and math.isnan(e.high):
        return "(no interval: too few data)"
    level = round(e.confidence * 100)
    return f"({level}% interval {_bound(e.low, digits)} to {_bound(e.high, digits)} points)"


def number(x: float | None, digits: int = 2) -> str:
    if x is None or math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "unbounded"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}" if abs(x) < 0.01 and x != 0 else f"{x:,.{digits}f}"


def money(x: float | None, unit: str) -> str:
    """Signed, with no more precision than a person reads: '+1.2 million EUR', '-6,890 EUR'."""
    if x is None or math.isnan(x):
        return "n/a"
    if abs(x) >= 1e6:
        return f"{x / 1e6:+,.{3 - len(str(int(abs(x) // 1e6)))}f} million {unit}".replace(
            ".0 million", " million") if abs(x) < 1e9 else f"{x / 1e9:+,.1f} billion {unit}"
    if abs(x) >= 1000:
        return f"{round(x, -1):+,.0f} {unit}"
    return f"{x:+,.0f} {unit}" if abs(x) >= 100 else f"{x:+,.2f} {unit}"


def duration(hours: float | None) -> str:
    """About how long: '40 minutes', '5 hours', '3 days'."""
    if hours is None or math.isnan(hours) or math.isinf(hours):
        return "an unknown time"
    if hours * 60 < 0.5:
        return "less than a minute"
    if hours < 1:
        minutes = max(1, round(hours * 60))
        return "about a minute" if minutes == 1 else f"about {minutes} minutes"
    if hours < 48:
        return f"about {round(hours)} hours" if hours >= 1.5 else "about an hour"
    return f"about {round(hours / 24)} days"


def _p(x: float, digits: int) -> str:
    return f"{x * 100:.{digits}f}"


def _bound(x: float, digits: int) -> str:
    if math.isinf(x):
        return "unbounded" if x > 0 else "-unbounded"
    return f"{x * 100:+.{digits}f}"
