"""The comparison report as a typed document: what the HTML, Markdown and JSON outputs render.

Schema ``shadowgate.report/1`` (``Report.model_json_schema()`` is its JSON Schema, written to
docs by ``shadowgate report --schema``). Numbers that the data cannot support are ``null``
with a ``note``; rates and differences are fractions (0.971, not 97.1), latencies are
milliseconds, money is in the config's ``value_unit``.

Compatibility: a field is only ever added within schema version 1; removing or changing the
meaning of one bumps the version.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from gateway.analysis.stats import Estimate

SCHEMA = "shadowgate.report/1"

VerdictKind = Literal["ready_to_promote", "needs_more_data", "do_not_promote"]
CheckResult = Literal["pass", "fail", "hold", "info"]
Comparison = Literal["paired", "ab"]


class Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _num(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else value


class Interval(Doc):
    """A point estimate with its interval (and p-value when a test goes with it)."""

    value: float | None
    low: float | None
    high: float | None
    confidence: float
    p_value: float | None = None
    note: str = ""

    @classmethod
    def of(cls, e: Estimate) -> Interval:
        return cls(value=_num(e.value), low=_num(e.low), high=_num(e.high),
                   confidence=e.confidence, p_value=_num(e.p_value) if e.p_value is not None
                   else None, note=e.note)

    @field_serializer("value", "low", "high", "p_value")
    def _finite(self, v: float | None) -> float | None:
        return _num(v)


class Check(Doc):
    """One named check: what was measured, against what bound, and what it means.

    The report's reasons and the rollout controller's decision records are these objects.
    """

    name: str
    kind: Literal["health", "guardrail", "info"]
    measured: float | None
    bound: float | None
    condition: str  # e.g. "candidate accuracy - champion accuracy >= -0.01 (95% sequence)"
    result: CheckResult
    sentence: str  # the same in words a product manager reads


class Verdict(Doc):
    candidate: str
    comparison: Comparison
    verdict: VerdictKind
    headline: str  # one line, e.g. "bc-gbt:1 is ready to promote"
    reasons: list[Check]
    more_labels: int | None = None  # needs_more_data: labelled requests still missing
    more_hours: float | None = None  # ... and about how long at the current traffic


class Coverage(Doc):
    """How often a model answered when it was asked (per request)."""

    asked: int
    ok: int
    error: int
    timeout: int
    dropped: int
    shed: int
    ok_rate: Interval
    error_rate: Interval  # errors and timeouts


class Latency(Doc):
    n: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    note: str = ""


class ModelSummary(Doc):
    model: str
    role: str  # champion, canary or shadow
    coverage: Coverage
    latency: Latency


class FlipMatrix(Doc):
    classes: list[str]
    counts: list[list[int]]  # [champion class][candidate class]


class Histogram(Doc):
    edges: list[float]
    counts: list[int]


class Agreement(Doc):
    pairs: int  # rows both models answered
    rate: Interval | None = None  # classifiers: same label
    kappa: Interval | None = None
    flips: FlipMatrix | None = None
    score_difference: Interval | None = None  # mean (candidate - champion) score
    score_difference_histogram: Histogram | None = None
    abs_difference_p50: float | None = None
    abs_difference_p95: float | None = None
    correlation: Interval | None = None  # models without classes
    positive_class: str | None = None


class ModelAccuracy(Doc):
    accuracy: Interval | None = None
    auc: Interval | None = None
    log_loss: Interval | None = None
    brier: Interval | None = None
    mean_abs_error: Interval | None = None
    estimated_accuracy: Interval | None = None  # label-free (CBPE), an estimate


class Accuracy(Doc):
    labelled: int
    label_coverage: Interval
    champion: ModelAccuracy
    candidate: ModelAccuracy
    difference: Interval | None = None  # candidate - champion, fixed-n (Newcombe)
    sequential: Interval | None = None  # the same, always valid under repeated looks
    mcnemar_p: float | None = None
    auc_difference: Interval | None = None  # DeLong
    log_loss_difference: Interval | None = None
    labels_needed: int | None = None  # more labelled requests before the gate can decide


class Business(Doc):
    decision: str  # "refer for biopsy when P(malignant) >= 0.5"
    unit: str
    flip_rate: Interval  # share of requests whose decision changes
    rate_before: Interval  # share of requests where the action is taken, champion
    rate_after: Interval  # ... candidate
    value_per_1000_before: Interval | None = None  # with labels
    value_per_1000_after: Interval | None = None
    value_difference_per_1000: Interval | None = None
    value_difference_per_day: Interval | None = None  # scaled to a day of current traffic
    sentence: str


class Segment(Doc):
    name: str
    rows: int
    agreement: Interval | None
    accuracy_difference: Interval | None
    p_adjusted: float | None  # difference in accuracy, after the correction


class Segments(Doc):
    by: str
    correction: str  # "Holm" or "Benjamini-Hochberg"
    segments: list[Segment]


class PredictionDrift(Doc):
    psi: float | None
    level: str | None
    ks_statistic: float | None
    ks_p_value: float | None
    champion_histogram: Histogram
    candidate_histogram: Histogram


class Outcome(Doc):
    """One business outcome, canary users vs champion users (A/B)."""

    name: str
    better: Literal["higher", "lower"]
    champion_mean: float | None
    canary_mean: float | None
    champion_n: int
    canary_n: int
    difference: Interval  # canary - champion, fixed-n (Welch)
    lift: Interval  # canary / champion - 1 (delta method)
    sequential_difference: Interval  # always valid
    sequential_lift: Interval
    sentence: str


class SampleRatio(Doc):
    """The split, counted in users (distinct routing keys; a request without one is a user)."""

    expected_share: float
    observed_share: float
    champion: int
    canary: int
    p_value: float | None
    flagged: bool
    note: str = ""


class ABComparison(Doc):
    srm: SampleRatio
    outcomes: list[Outcome]
    canary_latency: Latency
    champion_latency: Latency
    canary_error_rate: Interval
    champion_error_rate: Interval


class CandidateReport(Doc):
    model: str
    role: str  # shadow or canary
    verdict: Verdict
    champion: ModelSummary
    candidate: ModelSummary
    agreement: Agreement
    accuracy: Accuracy | None = None
    business: Business | None = None
    drift: PredictionDrift | None = None
    segments: Segments | None = None
    ab: ABComparison | None = None  # canaries only


class FeatureDrift(Doc):
    feature: str
    rows: int
    psi: float | None
    level: str | None
    p_value: float | None  # chi-squared against the training bins
    edges: list[float]
    expected: list[float]  # training fractions per bin
    observed: list[float]  # live fractions per bin


class Traffic(Doc):
    records: int
    rows: int
    first: float | None  # Unix seconds
    last: float | None
    per_second: float | None
    per_day: float | None
    labelled: int
    label_delay_p50_s: float | None
    label_delay_p95_s: float | None
    variants: dict[str, int]
    duplicates: int = 0
    undecodable: int = 0


class RolloutDecision(Doc):
    ts: float
    action: str  # start, hold, advance, promote, rollback, wait, pause, resume
    stage: str | None
    by: str  # "controller" or the token's name of the person who acted
    summary: str
    gates: list[Check] = []
    dry_run: bool = False


class Rollout(Doc):
    """The deployment's rollout, when it has one: where it stands and what was decided."""

    candidate: str
    status: str  # running, paused, waiting, rolled_back, promoted, not started
    stage: str | None
    stages: list[str]
    decisions: list[RolloutDecision]  # the newest last


class Window(Doc):
    since: float | None
    until: float | None
    source: str  # "redis" or a Parquet directory


class Report(Doc):
    """The whole report (schema shadowgate.report/1)."""

    report_schema: str = Field(SCHEMA, alias="schema")
    generated_at: float
    deployment: str
    revision: str | None
    champion: str
    window: Window
    traffic: Traffic
    verdicts: list[Verdict]
    candidates: list[CandidateReport]
    drift: list[FeatureDrift]  # inputs against the champion's training data, most drifted first
    notes: list[str] = []
    rollout: Rollout | None = None

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
