"""Sample-ratio mismatch: does each variant get the share of traffic it was configured for?

A mismatch means the assignment or the logging is broken (a replica routes differently, a
variant drops records), and then no A/B result can be trusted: check it before any verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.analysis.stats.chisquare import chi_square_gof

SRM_P_THRESHOLD = 0.001
"""Flag below this p-value (GrowthBook's default srmThreshold; Eppo and Optimizely also use a
strict threshold because the check is run continuously and must rarely cry wolf)."""

SRM_MIN_EXPECTED = 100.0
"""Check only once every variant expects at least this many units: far above the ~5 the
chi-squared approximation needs, so that the first minutes of a 1% canary do not flag on noise
and a flag always rests on a real volume of traffic."""


@dataclass(frozen=True, slots=True)
class SrmResult:
    """Chi-squared SRM check: `checked` once there are enough units, `flagged` on mismatch."""

    statistic: float
    p_value: float
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    checked: bool
    flagged: bool
    note: str = ""


def sample_ratio_mismatch(
    observed: Sequence[int],
    weights: Sequence[float],
    threshold: float = SRM_P_THRESHOLD,
    min_expected: float = SRM_MIN_EXPECTED,
) -> SrmResult:
    """Chi-squared goodness of fit of units per variant against the configured weights.

    Fabijan, A. et al. (2019). "Diagnosing Sample Ratio Mismatch in Online Controlled
    Experiments: A Taxonomy and Rules of Thumb for Practitioners". KDD 2019; the test as in
    GrowthBook and Eppo. Weights need not sum to 1. A variant with weight 0 that receives
    units is a mismatch however few (it is flagged as soon as the others are checkable).
    """
    fit = chi_square_gof(list(observed), list(weights))
    live = [e for e, w in zip(fit.expected, weights, strict=True) if w > 0]
    smallest = min(live)
    checked = smallest >= min_expected
    flagged = checked and fit.p_value < threshold
    note = fit.note
    if not checked and not note:
        note = f"too few units to check: smallest expected count {smallest:.0f} < {min_expected:g}"
    return SrmResult(
        fit.statistic,
        fit.p_value,
        tuple(int(o) for o in observed),
        fit.expected,
        checked,
        flagged,
        note,
    )
