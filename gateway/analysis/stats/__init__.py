"""Pure statistics over sufficient statistics: counts, sums, paired tables, histograms.

No I/O, no logging, no globals; randomness only through a `numpy.random.Generator` passed in.
Every estimator returns a typed result (mostly `Estimate`); data too thin for an estimate give
NaN numbers with a `note` saying why, instead of raising.
"""

from __future__ import annotations

from gateway.analysis.stats.correlation import CoMoments, pearson
from gateway.analysis.stats.interval import Alternative, Estimate
from gateway.analysis.stats.means import difference_of_means, mean_interval, relative_lift
from gateway.analysis.stats.moments import MeanVariance
from gateway.analysis.stats.paired import McNemarResult, PairedTable, mcnemar, paired_difference
from gateway.analysis.stats.proportions import (
    difference_of_proportions,
    lift_of_proportions,
    wilson,
)
from gateway.analysis.stats.sequential import (
    DEFAULT_TUNING,
    confidence_sequence_mean,
    cs_difference,
    cs_half_width,
    cs_mean,
    cs_relative_lift,
    cs_rho,
)

__all__ = [
    "DEFAULT_TUNING",
    "Alternative",
    "CoMoments",
    "Estimate",
    "McNemarResult",
    "MeanVariance",
    "PairedTable",
    "confidence_sequence_mean",
    "cs_difference",
    "cs_half_width",
    "cs_mean",
    "cs_relative_lift",
    "cs_rho",
    "difference_of_means",
    "difference_of_proportions",
    "lift_of_proportions",
    "mcnemar",
    "mean_interval",
    "paired_difference",
    "pearson",
    "relative_lift",
    "wilson",
]
