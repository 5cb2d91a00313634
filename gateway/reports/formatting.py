"""Numbers for people: 97.1%, "+2.3 points", 1,234, intervals that say their confidence.

Every function takes the document's raw numbers (fractions, milliseconds, Unix seconds; None
where the data could not support a number) and returns plain text; the HTML template escapes
it, the Markdown writer escapes it for Markdown. Nothing here computes a statistic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from gateway.analysis.document import Check, Interval

NA = "n/a"


def _bad(x: float | None) -> bool:
    return x is None or math.isnan(x) or math.isinf(x)


def count(n: float | None) -> str:
    """1234 -> '1,234'."""
    return NA if n is None or _bad(n) else f"{round(n):,}"


def pct(x: float | None) -> str:
    """A share: 0.9712 -> '97.1%'. Tiny or nearly-whole shares keep more digits (0.00019 ->
    '0.019%', 0.99981 -> '99.98%'), so a rate is never shown as 0.0% or 100% when it is not."""
    if x is None or _bad(x):
        return NA
    v = x * 100 + 0.0
    if v in (0.0, 100.0, -100.0):
        return f"{v:.0f}%"
    if abs(v) < 0.1:
        return f"{v:.2g}%"
    text = f"{v:.1f}"
    for digits in (2, 3):
        if abs(float(text)) not in (0.0, 100.0):
            break
        text = f"{v:.{digits}f}"
    return text + "%"


def signed_pct(x: float | None) -> str:
    """A relative change: 0.023 -> '+2.3%'."""
    if x is None or _bad(x):
        return NA
    text = pct(x)
    return text if text.startswith("-") or text == "0%" else "+" + text


def points(x: float | None, unit: bool = True) -> str:
    """A difference of two shares in percentage points: -0.021 -> '-2.1 points'."""
    if x is None or _bad(x):
        return NA
    v = x * 100 + 0.0  # + 0.0 turns -0.0 into 0.0
    if v == 0:
        return "0.0" + (" points" if unit else "")
    text = f"{v:+.2g}" if abs(v) < 0.1 else f"{v:+.1f}"
    return text + (" points" if unit else "")


def number(x: float | None) -> str:
    """About three significant digits: 0.9302 -> '0.930', 12.34 -> '12.3', 1234.5 -> '1,234'."""
    if x is None or _bad(x):
        return NA
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    if a >= 0.001:
        return f"{x:.3g}"
    return np.format_float_positional(x, precision=2, unique=False, fractional=False)


def metric(x: float | None) -> str:
    """A model metric (AUC, log-loss, Brier) with three decimals, so a column lines up."""
    return NA if x is None or _bad(x) else f"{x + 0.0:.3f}"


def signed_metric(x: float | None) -> str:
    return NA if x is None or _bad(x) else f"{x + 0.0:+.3f}"


def signed(x: float | None) -> str:
    text = number(x)
    return text if text == NA or text.startswith("-") or text == "0" else "+" + text


def money(x: float | None, unit: str, sign: bool = True) -> str:
    """'+2,913 EUR'; millions are written as such: '-5.95 million EUR'."""
    if x is None or _bad(x):
        return NA
    plus = "+" if sign else ""
    if x == 0:
        return f"0 {unit}"
    if abs(x) >= 1e6:
        return f"{x / 1e6:{plus}.2f} million {unit}"
    if abs(x) >= 100:
        return f"{x:{plus},.0f} {unit}"
    return f"{x:{plus},.2f} {unit}"


def ms(x: float | None) -> str:
    """Milliseconds with three significant digits: '0.369 ms', '12.3 ms', '1,204 ms'."""
    if x is None or _bad(x):
        return NA
    if x >= 100:
        return f"{x:,.0f} ms"
    return f"{x:.1f} ms" if x >= 10 else f"{x:.2f} ms"


def ratio(x: float | None) -> str:
    return NA if x is None or _bad(x) else f"{x:.2f}x"


def p_value(p: float | None) -> str:
    """'p < 0.001', 'p = 0.012', 'p = 0.69'."""
    if p is None or _bad(p):
        return "p: n/a"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.2g}" if p < 0.1 else f"p = {p:.2f}"


def when(ts: float | None) -> str:
    """Unix seconds -> '2027-01-15 08:00:00 UTC'."""
    if ts is None or _bad(ts):
        return NA
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def hours(h: float | None) -> str:
    """About how long: 'about 40 minutes', 'about 5 hours', 'about 3 days'."""
    if h is None or _bad(h):
        return "an unknown time"
    if h < 1:
        minutes = round(h * 60)
        return "about a minute" if minutes <= 1 else f"about {minutes} minutes"
    if h < 48:
        return f"about {round(h)} hours" if h >= 1.5 else "about an hour"
    return f"about {round(h / 24)} days"


def seconds(s: float | None) -> str:
    return NA if s is None or _bad(s) else hours(s / 3600).removeprefix("about ")


# Intervals ------------------------------------------------------------------------------

STYLES: dict[str, tuple[Callable[[float | None], str], str]] = {
    "pct": (pct, ""),  # the functions write the % themselves
    "signed_pct": (signed_pct, ""),
    "points": (lambda x: points(x, unit=False), " points"),
    "number": (number, ""),
    "signed": (signed, ""),
    "metric": (metric, ""),
    "signed_metric": (signed_metric, ""),
}


def styled(x: float | None, style: str = "pct") -> str:
    """One number in one of the interval styles below: styled(0.02, "points") -> '+2.0 points'."""
    f, suffix = STYLES[style]
    text = f(x)
    return text if text == NA else text + suffix


def interval(iv: Interval | None, style: str = "pct", *, unit: str = "",
             always_valid: bool = False) -> str:
    """'97.1% (95% interval 96.8 to 97.4%)'; 'n/a (too few pairs)' when undefined.

    ``style``: pct (a share), signed_pct (a relative change), points (a difference of shares),
    number, signed, money (with ``unit``). ``always_valid`` names a confidence sequence.
    """
    if iv is None:
        return NA
    if iv.value is None:
        return NA + (f" ({iv.note})" if iv.note else "")
    value, bounds = _value_and_bounds(iv, style, unit)
    kind = "always-valid interval" if always_valid else "interval"
    level = f"{round(iv.confidence * 100)}%"
    if iv.low is None and iv.high is None:
        why = iv.note or "too few data"
        return f"{value} (no interval: {why})"
    if iv.low is None:
        return f"{value} ({level} {kind}: at most {bounds[1]})"
    if iv.high is None:
        return f"{value} ({level} {kind}: at least {bounds[0]})"
    return f"{value} ({level} {kind} {bounds[0]} to {bounds[1]})"


def bounds(iv: Interval | None, style: str = "pct", *, unit: str = "") -> str:
    """Only the interval: '96.8 to 97.4%' (for tables whose column names the confidence)."""
    if iv is None or (iv.low is None and iv.high is None):
        return NA
    _, (low, high) = _value_and_bounds(iv, style, unit)
    return f"{low} to {high}"


def _value_and_bounds(iv: Interval, style: str, unit: str) -> tuple[str, tuple[str, str]]:
    if style == "money":
        def fmt(x: float | None) -> str:
            return money(x, unit)
        value = fmt(iv.value)
        return value, (fmt(iv.low) if iv.low is not None else "unbounded",
                       fmt(iv.high) if iv.high is not None else "unbounded")
    f, suffix = STYLES[style]
    low = f(iv.low).removesuffix("%") if iv.low is not None else "unbounded"
    high = f(iv.high) if iv.high is not None else "unbounded"
    return f(iv.value) + suffix, (low, high + suffix)


# Checks ---------------------------------------------------------------------------------

CHECK_LABELS = {
    "coverage": "Coverage",
    "pairs": "Requests compared",
    "sample_ratio": "Canary split",
    "error_rate": "Error rate",
    "latency_p99": "Latency (p99)",
    "agreement": "Agreement",
    "accuracy": "Accuracy",
    "business_value": "Business value",
}

RESULT_WORDS = {"pass": "pass", "fail": "fail", "hold": "hold", "info": "info"}
RESULT_MARKS = {"pass": "\u2713", "fail": "\u2717", "hold": "\u2026", "info": "i"}


def check_label(name: str) -> str:
    """'outcome:converted' -> 'Outcome: converted'; unknown names are shown as they are."""
    if name.startswith("outcome:"):
        return "Outcome: " + name.removeprefix("outcome:")
    return CHECK_LABELS.get(name, name.replace("_", " ").capitalize())


def check_value(check: Check, x: float | None, unit: str = "") -> str:
    """A check's measured value or bound in the unit its name implies."""
    if x is None or _bad(x):
        return NA
    name = check.name
    if name in ("coverage", "agreement"):
        return pct(x)
    if name == "pairs":
        return count(x)
    if name == "sample_ratio":
        return p_value(x).removeprefix("p = ").replace("p < ", "< ")
    if name in ("error_rate", "accuracy"):
        return points(x)
    if name == "latency_p99":
        return ratio(x)
    if name == "business_value":
        return money(x * 1000, unit) + " per 1,000 requests" if unit else signed(x)
    if name.startswith("outcome:"):
        return signed_pct(x)
    return number(x)


DRIFT_WORDS = {"none": "no drift", "moderate": "moderate drift", "major": "major drift"}


def drift_level(level: str | None) -> str:
    return "n/a" if level is None else DRIFT_WORDS.get(level, level)


VERDICT_WORDS = {
    "ready_to_promote": "Ready to promote",
    "needs_more_data": "Needs more data",
    "do_not_promote": "Do not promote",
}
VERDICT_MARKS = {"ready_to_promote": "\u2713", "needs_more_data": "\u2026",
                 "do_not_promote": "\u2717"}
