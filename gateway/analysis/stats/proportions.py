"""Intervals for one proportion and for two independent proportions (rates of two groups).

Use these for error rates, timeout rates and conversion rates of canary users against champion
users. Two models scored on the same requests are *paired*: see `paired.py`.
"""

from __future__ import annotations

import math

from gateway.analysis.stats.interval import Estimate, check_confidence, z_value


def wilson(successes: int, n: int, confidence: float = 0.95) -> Estimate:
    """Wilson score interval for a binomial proportion; `value` is successes / n.

    Wilson, E. B. (1927). "Probable inference, the law of succession, and statistical
    inference". JASA 22, 209-212. Keeps its coverage near nominal for small n and for rates
    near 0 or 1, where the Wald interval fails (Brown, Cai & DasGupta 2001). n = 0 gives an
    undefined estimate.
    """
    _check_counts(successes, n)
    check_confidence(confidence)
    if n == 0:
        return Estimate.undefined(confidence, "no observations")
    low, high = wilson_bounds(successes, n, z_value(confidence))
    return Estimate(successes / n, low, high, confidence)


def wilson_bounds(successes: int, n: int, z: float) -> tuple[float, float]:
    """The Wilson score bounds for `z` (n > 0); shared with the Newcombe intervals."""
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def difference_of_proportions(
    successes_1: int, n_1: int, successes_2: int, n_2: int, confidence: float = 0.95
) -> Estimate:
    """Difference p1 - p2 of two independent proportions, Newcombe's hybrid score interval.

    Newcombe, R. G. (1998). "Interval estimation for the difference between independent
    proportions: comparison of eleven methods". Statistics in Medicine 17, 873-890, method 10
    (square-and-add of the two Wilson intervals). Good coverage down to small counts; no
    p-value is given (read significance off the interval). Undefined if either n is 0.
    """
    _check_counts(successes_1, n_1)
    _check_counts(successes_2, n_2)
    check_confidence(confidence)
    if n_1 == 0 or n_2 == 0:
        return Estimate.undefined(confidence, "a group has no observations")
    z = z_value(confidence)
    p1, p2 = successes_1 / n_1, successes_2 / n_2
    l1, u1 = wilson_bounds(successes_1, n_1, z)
    l2, u2 = wilson_bounds(successes_2, n_2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Estimate(d, low, high, confidence)


def lift_of_proportions(
    successes_1: int, n_1: int, successes_2: int, n_2: int, confidence: float = 0.95
) -> Estimate:
    """Relative lift p1 / p2 - 1 of two independent proportions, Katz log interval.

    Katz, D., Baptista, J., Azen, S. P. & Pike, M. C. (1978). "Obtaining confidence intervals
    for the risk ratio in cohort studies". Biometrics 34, 469-474: log(p1/p2) is close to
    normal with variance 1/x1 - 1/n1 + 1/x2 - 1/n2. Undefined when either group has no
    successes (the log is infinite): compare such rates by their difference instead.
    """
    _check_counts(successes_1, n_1)
    _check_counts(successes_2, n_2)
    check_confidence(confidence)
    if n_1 == 0 or n_2 == 0:
        return Estimate.undefined(confidence, "a group has no observations")
    if successes_1 == 0 or successes_2 == 0:
        return Estimate.undefined(confidence, "no successes in a group: lift is unbounded")
    log_ratio = math.log((successes_1 / n_1) / (successes_2 / n_2))
    se = math.sqrt(1 / successes_1 - 1 / n_1 + 1 / successes_2 - 1 / n_2)
    z = z_value(confidence)
    return Estimate(
        math.exp(log_ratio) - 1,
        math.exp(log_ratio - z * se) - 1,
        math.exp(log_ratio + z * se) - 1,
        confidence,
    )


def _check_counts(successes: int, n: int) -> None:
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
