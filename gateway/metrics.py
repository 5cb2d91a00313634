"""Every Prometheus metric of the gateway, built on an injected ``CollectorRegistry``.

Names follow MLServer (``model_infer_request_*`` with ``model_name``/``model_version``
labels) and, beside them, Triton (``nv_inference_*`` with ``model``/``version``, from
plain numbers read at scrape time: gateway/inferstats.py), so that either family of serving
dashboards carries over; gateway-specific series are prefixed ``shadowgate_``.
The series updated on every request are plain numbers exported at scrape time
(gateway/plainmetrics.py). Under ``--workers N`` the process runs in prometheus_client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``); those series are then the library's own
classes, and gauges sum over live processes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from gateway.inferstats import ModelStats, StatsBook
from gateway.plainmetrics import (
    CounterChild,
    HistogramChild,
    PlainCounterFamily,
    PlainHistogramFamily,
)

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
# Candidate minus champion score of the positive class.
SCORE_DIFF_BUCKETS = (-0.5, -0.2, -0.1, -0.05, -0.02, -0.01, 0.0, 0.01, 0.02, 0.05, 0.1, 0.2,
                      0.5, 1.0)
MODEL_LABELS = ("model_name", "model_version")


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def _counter(name: str, doc: str, labels: tuple[str, ...], registry: CollectorRegistry
             ) -> Counter | PlainCounterFamily:
    """A counter family updated on the request path."""
    if _multiprocess():
        return Counter(name, doc, labels, registry=registry)
    family = PlainCounterFamily(name, doc, labels)
    registry.register(family)
    return family


def _histogram(name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...],
               registry: CollectorRegistry) -> Histogram | PlainHistogramFamily:
    """A histogram family updated on the request path."""
    if _multiprocess():
        return Histogram(name, doc, labels, buckets=buckets, registry=registry)
    family = PlainHistogramFamily(name, doc, labels, buckets)
    registry.register(family)
    return family


def _gauge(name: str, doc: str, labels: tuple[str, ...], registry: CollectorRegistry) -> Gauge:
    if _multiprocess():
        return Gauge(name, doc, labels, registry=registry, multiprocess_mode="livesum")
    return Gauge(name, doc, labels, registry=registry)


@dataclass(frozen=True)
class ModelMetrics:
    """Label children of one model, resolved once so the request path skips label lookups."""

    success: CounterChild
    compute: HistogramChild
    duration: HistogramChild
    stats: ModelStats


class InFlight:
    """Requests being served: a plain int read at scrape time (no lock per request), or the
    gauge itself under multiprocess mode, where callbacks are not supported."""

    def __init__(self, gauge: Gauge) -> None:
        self.count = 0
        self._gauge: Gauge | None = None
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            self._gauge = gauge
        else:
            gauge.set_function(lambda: self.count)

    def enter(self) -> None:
        self.count += 1
        if self._gauge is not None:
            self._gauge.inc()

    def exit(self) -> None:
        self.count -= 1
        if self._gauge is not None:
            self._gauge.dec()


class Metrics:
    """All metric families; create one per app (tests pass a fresh registry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # The *_created series double the payload and no dashboard reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # Serving
        self.request_success = _counter(
            "model_infer_request_success", "Successful inference requests", MODEL_LABELS, r)
        self.request_failure = Counter(
            "model_infer_request_failure", "Failed inference requests by reason",
            (*MODEL_LABELS, "reason"), registry=r)
        self.request_duration = _histogram(
            "model_infer_request_duration_seconds",
            "Time from request received to response ready (gateway total)", MODEL_LABELS,
            LATENCY_BUCKETS, r)
        self.compute_duration = _histogram(
            "model_infer_compute_duration_seconds", "Time spent in the model call only",
            MODEL_LABELS, LATENCY_BUCKETS, r)
        self.in_flight = _gauge(
            "rest_server_requests_in_progress", "Inference requests being served", (), r)
        # Triton's families (nv_inference_*), per model version and per deployment.
        self.book = StatsBook(r, multiprocess=_multiprocess())
        # Traffic policy
        self.variant_requests = _counter(
            "shadowgate_variant_requests", "Deployment requests by the variant that answered",
            ("deployment", "variant"), r)
        self.shadow_queue_depth = _gauge(
            "shadowgate_shadow_queue_depth", "Jobs waiting in a shadow model's queue",
            MODEL_LABELS, r)
        self.shadow_batch_size = Histogram(
            "shadowgate_shadow_batch_size", "Requests per shadow micro-batch", MODEL_LABELS,
            buckets=BATCH_BUCKETS, registry=r)
        self.shadow_dropped = Counter(
            "shadowgate_shadow_dropped", "Shadow requests dropped before running, by reason",
            (*MODEL_LABELS, "reason"), registry=r)
        self.shadow_results = Counter(
            "shadowgate_shadow_results", "Shadow requests by outcome (ok, error, timeout)",
            (*MODEL_LABELS, "status"), registry=r)
        self.shadow_latency = Histogram(
            "shadowgate_shadow_latency_seconds", "Latency of one shadow micro-batch call",
            MODEL_LABELS, buckets=LATENCY_BUCKETS, registry=r)
        # Prediction log
        self.log_written = Counter(
            "shadowgate_predlog_records_written", "Records written to Redis", registry=r)
        self.log_spooled = Counter(
            "shadowgate_predlog_records_spooled", "Records written to the disk spool",
            registry=r)
        self.log_replayed = Counter(
            "shadowgate_predlog_records_replayed", "Spooled records replayed into Redis",
            registry=r)
        self.log_dropped = Counter(
            "shadowgate_predlog_records_dropped", "Records lost, by reason", ("reason",),
            registry=r)
        self.log_queue_depth = _gauge(
            "shadowgate_predlog_queue_depth", "Records waiting in the writer queue", (), r)
        self.log_spool_bytes = _gauge(
            "shadowgate_predlog_spool_bytes", "Bytes held in the disk spool", (), r)
        self.log_redis_up = _gauge(
            "shadowgate_predlog_redis_up", "1 when the last Redis write succeeded", (), r)
        self.log_write_duration = Histogram(
            "shadowgate_predlog_write_duration_seconds", "Latency of one pipelined Redis batch",
            buckets=LATENCY_BUCKETS, registry=r)
        # Live agreement of candidates (gateway/traffic/live.py)
        pair = ("deployment", "candidate")
        self.agreement_rows = Counter(
            "shadowgate_agreement_rows", "Rows both the champion and a candidate answered",
            pair, registry=r)
        self.agreement_same = Counter(
            "shadowgate_agreement_same", "Rows where the candidate gave the champion's label",
            pair, registry=r)
        self.decision_flips = Counter(
            "shadowgate_decision_flips", "Rows whose configured decision the candidate changes",
            pair, registry=r)
        self.score_difference = Histogram(
            "shadowgate_score_difference",
            "Candidate minus champion score of the positive class", pair,
            buckets=SCORE_DIFF_BUCKETS, registry=r)
        # Config reloads and rollouts
        self.config_reloads = Counter(
            "shadowgate_config_reloads", "Config reloads by result (applied, invalid, failed)",
            ("result",), registry=r)
        self.config_revision = _gauge(
            "shadowgate_config_info", "1 for the config revision being served", ("revision",), r)
        self.rollout_stage = _gauge(
            "shadowgate_rollout_stage", "Stage index of a rollout (-1 rolled back, number of "
            "stages once promoted)", ("deployment", "candidate"), r)
        self.rollout_decisions = Counter(
            "shadowgate_rollout_decisions", "Rollout decisions by action and the gate that failed",
            ("deployment", "action", "gate"), registry=r)
        self.rollout_webhook_failures = Counter(
            "shadowgate_rollout_webhook_failures", "Decisions the webhook did not take",
            registry=r)
        self.feedback_received = Counter(
            "shadowgate_feedback_received", "Feedback items stored (new or corrected), by "
            "deployment and token name", ("deployment", "by"), registry=r)
        self.feedback_ignored = Counter(
            "shadowgate_feedback_ignored", "Feedback items not stored, by reason (duplicate: "
            "a label was there and the item is no correction; orphan_too_old: no record and "
            "older than the orphan window)", ("deployment", "reason"), registry=r)
        self.feedback_corrections = Counter(
            "shadowgate_feedback_corrections", "Stored feedback overwritten by a correction",
            ("deployment",), registry=r)
        self.feedback_orphans = Counter(
            "shadowgate_feedback_orphans", "Feedback stored for a request with no record yet",
            ("deployment",), registry=r)
        self.feedback_trimmed = Counter(
            "shadowgate_feedback_trimmed", "Stored feedback dropped by retention (oldest first)",
            ("deployment",), registry=r)
        self.rate_limited = Counter(
            "shadowgate_rate_limited", "Requests refused with 429, by limit and token name",
            ("limit", "by"), registry=r)
        self.auth_refused = Counter(
            "shadowgate_auth_refused", "Requests refused for want of a valid token, by scope "
            "and reason (missing, malformed, invalid, scope, disabled)", ("scope", "reason"),
            registry=r)

    def model(self, name: str, version: str) -> ModelMetrics:
        """Pre-bound children for one model."""
        return ModelMetrics(
            success=self.request_success.labels(name, version),
            compute=self.compute_duration.labels(name, version),
            duration=self.request_duration.labels(name, version),
            stats=self.book.get(name, version),
        )

    def stats(self, name: str, version: str) -> ModelStats:
        """The Triton statistics of a model version, or of a deployment (version "")."""
        return self.book.get(name, version)


def observe_counts(child: Histogram, counts: Sequence[int] | Any, total: float) -> None:
    """Add many observations to a histogram child at once: ``counts[i]`` of them in bucket i
    (the buckets as configured, then +Inf), summing to ``total``.

    prometheus_client keeps per-bucket (not cumulative) values and sums them at scrape time;
    this adds to those values directly, in one call per bucket instead of one ``observe`` per
    value. It relies on the ``_buckets``/``_sum`` attributes that prometheus_client's
    Histogram has kept since 0.4; a test checks the exposition against ``observe``.
    """
    buckets = child._buckets
    for i, count in enumerate(counts):
        if count:
            buckets[i].inc(float(count))
    child._sum.inc(total)
