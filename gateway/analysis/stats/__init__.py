"""Pure statistics over sufficient statistics: counts, sums, paired tables, histograms.

No I/O, no logging, no globals; randomness only through a `numpy.random.Generator` passed in.
Every estimator returns a typed result (mostly `Estimate`); data too thin for an estimate give
NaN numbers with a `note` saying why, instead of raising. Two-sample functions report
first - second (pass the candidate first).
"""

from __future__ import annotations

from gateway.analysis.stats.agreement import agreement, cohens_kappa, flip_matrix
from gateway.analysis.stats.auc import AucComparison, delong_test, roc_auc
from gateway.analysis.stats.bootstrap import DEFAULT_RESAMPLES, paired_bootstrap
from gateway.analysis.stats.cbpe import (
    CalibrationCheck,
    ReliabilityBin,
    calibration_check,
    expected_accuracy,
    expected_accuracy_from_sums,
    prediction_confidence,
)
from gateway.analysis.stats.chisquare import GoodnessOfFit, chi_square_gof
from gateway.analysis.stats.classification import (
    LOG_LOSS_EPS,
    accuracy,
    brier_score,
    brier_terms,
    log_loss,
    log_loss_terms,
)
from gateway.analysis.stats.correlation import CoMoments, pearson
from gateway.analysis.stats.drift import (
    KS_EXACT_BELOW,
    PSI_EPSILON,
    PSI_MAJOR,
    PSI_MODERATE,
    DriftLevel,
    DriftResult,
    KsResult,
    bin_counts,
    drift_against_reference,
    ks_binned,
    psi,
    psi_level,
)
from gateway.analysis.stats.interval import Alternative, Estimate
from gateway.analysis.stats.means import difference_of_means, mean_interval, relative_lift
from gateway.analysis.stats.moments import MeanVariance
from gateway.analysis.stats.multiple import benjamini_hochberg, holm
from gateway.analysis.stats.paired import (
    EXACT_BELOW,
    McNemarResult,
    PairedTable,
    mcnemar,
    paired_difference,
)
from gateway.analysis.stats.power import SampleSize, labels_needed, mcnemar_sample_size
from gateway.analysis.stats.proportions import (
    difference_of_proportions,
    lift_of_proportions,
    wilson,
)
from gateway.analysis.stats.quantiles import LogHistogram
from gateway.analysis.stats.sequential import (
    DEFAULT_TUNING,
    confidence_sequence_mean,
    cs_difference,
    cs_half_width,
    cs_mean,
    cs_relative_lift,
    cs_rho,
    cs_samples_needed,
)
from gateway.analysis.stats.srm import (
    SRM_MIN_EXPECTED,
    SRM_P_THRESHOLD,
    SrmResult,
    sample_ratio_mismatch,
)

__all__ = [
    "DEFAULT_RESAMPLES",
    "DEFAULT_TUNING",
    "EXACT_BELOW",
    "KS_EXACT_BELOW",
    "LOG_LOSS_EPS",
    "PSI_EPSILON",
    "PSI_MAJOR",
    "PSI_MODERATE",
    "SRM_MIN_EXPECTED",
    "SRM_P_THRESHOLD",
    "Alternative",
    "AucComparison",
    "CalibrationCheck",
    "CoMoments",
    "DriftLevel",
    "DriftResult",
    "Estimate",
    "GoodnessOfFit",
    "KsResult",
    "LogHistogram",
    "McNemarResult",
    "MeanVariance",
    "PairedTable",
    "ReliabilityBin",
    "SampleSize",
    "SrmResult",
    "accuracy",
    "agreement",
    "benjamini_hochberg",
    "bin_counts",
    "brier_score",
    "brier_terms",
    "calibration_check",
    "chi_square_gof",
    "cohens_kappa",
    "confidence_sequence_mean",
    "cs_difference",
    "cs_half_width",
    "cs_mean",
    "cs_relative_lift",
    "cs_rho",
    "cs_samples_needed",
    "delong_test",
    "difference_of_means",
    "difference_of_proportions",
    "drift_against_reference",
    "expected_accuracy",
    "expected_accuracy_from_sums",
    "flip_matrix",
    "holm",
    "ks_binned",
    "labels_needed",
    "lift_of_proportions",
    "log_loss",
    "log_loss_terms",
    "mcnemar",
    "mcnemar_sample_size",
    "mean_interval",
    "paired_bootstrap",
    "paired_difference",
    "pearson",
    "prediction_confidence",
    "psi",
    "psi_level",
    "relative_lift",
    "roc_auc",
    "sample_ratio_mismatch",
    "wilson",
]
