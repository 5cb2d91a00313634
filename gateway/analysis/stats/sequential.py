"""Always-valid confidence sequences: look at an A/B comparison as often as you like.

A fixed-n 95% interval is valid only if looked at once; refreshing a report every minute and
stopping at the first look that excludes 0 raises the false-alarm rate far above 5%. A
confidence sequence holds at every n at once: P(the effect is ever outside the sequence)
<= 1 - confidence, so a rollout gate may look again and again.

Method: the asymptotic confidence sequence (Gaussian mixture) of Waudby-Smith, I., Arnold, D.,
Wu, J. J., Howard, S. R. & Ramdas, A. (2024). "Time-uniform central limit theory and
asymptotic confidence sequences". Annals of Statistics 52(6), https://arxiv.org/abs/2103.06476
(Theorem 2.2 and Appendix on choosing rho), parameterised as GrowthBook's gbstats does: a
tuning sample size N at which the sequence is tightest replaces the mixture parameter rho.
The one-sided sequence uses the one-sided normal-mixture boundary of Howard, S. R., Ramdas, A.,
McAuliffe, J. & Sekhon, J. (2021). "Time-uniform, nonparametric, nonasymptotic confidence
sequences". Annals of Statistics 49(2), 1055-1080, applied with the same asymptotics.

The sequences are asymptotic: they assume i.i.d. rows and n large enough for the CLT (in
practice hundreds per group); `variance` is always the variance of one row's contribution,
i.e. n times the variance of the estimate.
"""

from __future__ import annotations

import math

from gateway.analysis.stats.interval import (
    Alternative,
    Estimate,
    check_alternative,
    check_confidence,
    degenerate_p_value,
)
from gateway.analysis.stats.means import lift_and_se
from gateway.analysis.stats.moments import MeanVariance

DEFAULT_TUNING = 5_000
"""Sample size at which the sequence is narrowest (gbstats' default `sequential_tuning_parameter`).

Set it near the number of rows (both groups together) at which a decision is expected; the
width grows only slowly (like sqrt(log n)) away from it.
"""


def cs_rho(
    confidence: float = 0.95, tuning: float = DEFAULT_TUNING, two_sided: bool = True
) -> float:
    """The mixture parameter rho that makes the sequence tightest at n = `tuning`.

    rho = sqrt((-2 ln a + ln(-2 ln a + 1)) / N), with a = alpha (two-sided) or 2 alpha
    (one-sided); Waudby-Smith et al. (2024), eq. for the optimal rho; gbstats `sequential_rho`.
    """
    check_confidence(confidence)
    if tuning <= 0:
        raise ValueError(f"tuning must be > 0, got {tuning}")
    a = 1.0 - confidence if two_sided else 2.0 * (1.0 - confidence)
    if a >= 1.0:
        raise ValueError("a one-sided confidence sequence needs confidence > 0.5")
    return math.sqrt((-2.0 * math.log(a) + math.log(-2.0 * math.log(a) + 1.0)) / tuning)


def cs_half_width(
    variance: float,
    n: float,
    confidence: float = 0.95,
    tuning: float = DEFAULT_TUNING,
    alternative: Alternative = "two-sided",
) -> float:
    """Half-width of the confidence sequence at sample size `n` for per-row `variance`.

    Two-sided: sqrt(variance * 2 (n rho^2 + 1) / (n rho)^2 * ln(sqrt(n rho^2 + 1) / alpha)).
    One-sided: sqrt(variance * 2 (n rho^2 + 1) / (n rho)^2 * ln(1 + sqrt(n rho^2 + 1) / (2 alpha))).
    """
    check_alternative(alternative)
    two_sided = alternative == "two-sided"
    rho = cs_rho(confidence, tuning, two_sided)
    alpha = 1.0 - confidence
    v = n * rho * rho + 1.0
    if two_sided:
        log_term = math.log(math.sqrt(v) / alpha)
    else:
        log_term = math.log1p(math.sqrt(v) / (2.0 * alpha))
    return math.sqrt(variance * 2.0 * v / (n * rho) ** 2 * log_term)


def cs_samples_needed(
    variance: float,
    width: float,
    confidence: float = 0.95,
    tuning: float = DEFAULT_TUNING,
    alternative: Alternative = "two-sided",
    limit: float = 1e12,
) -> float:
    """The smallest n at which the sequence's half-width is at most `width` (inf when not
    before `limit`): how many observations a gate still needs to decide, given the variance
    seen so far. The half-width falls with n (like sqrt(log n / n)), so a doubling search
    then bisection finds it in about 80 evaluations.
    """
    if width <= 0 or math.isnan(variance) or math.isnan(width):
        return math.inf
    if variance <= 0:
        return 2.0
    lo, hi = 1.0, 2.0
    while cs_half_width(variance, hi, confidence, tuning, alternative) > width:
        lo, hi = hi, hi * 2
        if hi > limit:
            return math.inf
    for _ in range(60):
        mid = (lo + hi) / 2
        if cs_half_width(variance, mid, confidence, tuning, alternative) > width:
            lo = mid
        else:
            hi = mid
    return math.ceil(hi)


def confidence_sequence_mean(
    mean: float,
    variance: float,
    n: float,
    confidence: float = 0.95,
    tuning: float = DEFAULT_TUNING,
    alternative: Alternative = "two-sided",
    null: float = 0.0,
) -> Estimate:
    """The confidence sequence at `n` for an estimate `mean` whose rows have `variance`.

    The p-value is always valid too (it is 1 / the mixture e-value, eq. 155 of the paper, for
    two sides; the smallest alpha whose one-sided sequence excludes `null` for one side, with
    rho fixed by `confidence`): it is below 1 - confidence exactly when the sequence excludes
    `null`. "greater" bounds the effect from below ([low, inf)), "less" from above.
    """
    check_confidence(confidence)
    check_alternative(alternative)
    if n <= 0:
        return Estimate.undefined(confidence, "no observations")
    if math.isnan(variance):
        return Estimate.undefined(confidence, "variance unknown")
    if variance < 0:
        raise ValueError(f"variance must be >= 0, got {variance}")
    half = cs_half_width(variance, n, confidence, tuning, alternative)
    low = mean - half if alternative != "less" else -math.inf
    high = mean + half if alternative != "greater" else math.inf
    if variance == 0:
        p = degenerate_p_value(mean - null, alternative)
        return Estimate(mean, low, high, confidence, p, "zero variance")
    p = _p_value(mean - null, variance, n, confidence, tuning, alternative)
    return Estimate(mean, low, high, confidence, p)


def _p_value(
    delta: float,
    variance: float,
    n: float,
    confidence: float,
    tuning: float,
    alternative: Alternative,
) -> float:
    rho = cs_rho(confidence, tuning, alternative == "two-sided")
    v = n * rho * rho + 1.0
    c = (n * rho * delta) ** 2 / (2.0 * variance * v)
    if alternative == "two-sided":
        return min(1.0, math.exp(0.5 * math.log(v) - c))
    if (alternative == "greater" and delta <= 0) or (alternative == "less" and delta >= 0):
        return 1.0
    if c == 0:
        return 1.0
    # p = sqrt(v) / (2 expm1(c)), in logs so that neither a tiny nor a huge c overflows.
    log_expm1 = math.log(math.expm1(c)) if c < 30 else c + math.log1p(-math.exp(-c))
    log_p = 0.5 * math.log(v) - math.log(2.0) - log_expm1
    return 1.0 if log_p >= 0 else math.exp(log_p)


def cs_mean(
    stats: MeanVariance,
    confidence: float = 0.95,
    tuning: float = DEFAULT_TUNING,
    alternative: Alternative = "two-sided",
    null: float = 0.0,
) -> Estimate:
    """Confidence sequence for one mean, e.g. of paired differences d_i (needs n >= 2)."""
    if stats.n < 2:
        return Estimate.undefined(confidence, "need two observations")
    return confidence_sequence_mean(
        stats.mean, stats.variance, stats.n, confidence, tuning, alternative, null
    )


def cs_difference(
    first: MeanVariance,
    second: MeanVariance,
    confidence: float = 0.95,
    tuning: float = DEFAULT_TUNING,
    alternative: Alternative = "two-sided",
    null: float = 0.0,
) -> Estimate:
    """Confidence sequence for mean(first) - mean(second) of two independent groups.

    n is both groups together and the per-row variance n (var1/n1 + var2/n2), as gbstats'
    SequentialTwoSidedTTest. For a guardrail ("first is not worse than second by more than
    m", higher is better) use alternative="greater" and null=-m: `low > -m` passes it and a
    p-value below 1 - confidence rejects "worse by m or more".
    """
    if first.n < 2 or second.n < 2:
        return Estimate.undefined(confidence, "need two observations per group")
    n = first.n + second.n
    variance = n * (first.variance / first.n + second.variance / second.n)
    return confidence_sequence_mean(
        first.mean - second.mean, variance, n, confidence, tuning, alternative, null
    )


def cs_relative_lift(
    first: MeanVariance,
    second: MeanVariance,
    confidence: float = 0.95,
    tuning: float = DEFAULT_TUNING,
    alternative: Alternative = "two-sided",
    null: float = 0.0,
) -> Estimate:
    """Confidence sequence for mean(first) / mean(second) - 1 (delta-method variance).

    Deng, Knoblich & Lu (2018) for the variance, as gbstats' relative sequential test.
    Undefined when the baseline mean is 0.
    """
    if first.n < 2 or second.n < 2:
        return Estimate.undefined(confidence, "need two observations per group")
    if second.mean == 0:
        return Estimate.undefined(confidence, "baseline mean is 0: lift is undefined")
    lift, se = lift_and_se(first, second)
    n = first.n + second.n
    return confidence_sequence_mean(lift, n * se * se, n, confidence, tuning, alternative, null)
