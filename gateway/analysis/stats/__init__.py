"""Pure statistics over sufficient statistics: counts, sums, paired tables, histograms.

No I/O, no logging, no globals; randomness only through a `numpy.random.Generator` passed in.
Every estimator returns a typed result (mostly `Estimate`); data too thin for an estimate give
NaN numbers with a `note` saying why, instead of raising.
"""

from __future__ import annotations

from gateway.analysis.stats.auc import AucComparison, delong_test, roc_auc
from gateway.analysis.stats.bootstrap import DEFAULT_RESAMPLES, paired_bootstrap
from gateway.analysis.stats.classification import (
    LOG_LOSS_EPS,
    accuracy,
    brier_score,
    brier_terms,
    log_loss,
    log_loss_terms,
)
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
    "DEFAULT_RESAMPLES",
    "DEFAULT_TUNING",
    "LOG_LOSS_EPS",
    "Alternative",
    "AucComparison",
    "CoMoments",
    "Estimate",
    "McNemarResult",
    "MeanVariance",
    "PairedTable",
    "accuracy",
    "brier_score",
    "brier_terms",
    "confidence_sequence_mean",
    "cs_difference",
    "cs_half_width",
    "cs_mean",
    "cs_relative_lift",
    "cs_rho",
    "delong_test",
    "difference_of_means",
    "difference_of_proportions",
    "lift_of_proportions",
    "log_loss",
    "log_loss_terms",
    "mcnemar",
    "mean_interval",
    "paired_bootstrap",
    "paired_difference",
    "pearson",
    "relative_lift",
    "roc_auc",
    "wilson",
]
