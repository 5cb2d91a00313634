"""Per-model inference statistics as plain numbers: Triton's statistics extension and its
``nv_inference_*`` metrics.

The request path adds to the attributes of a ``ModelStats`` (no lock, no Prometheus call);
``TritonCollector`` turns them into Triton's metric families when /metrics is scraped, and
the statistics endpoints (``/v2/models/{name}/stats``, gRPC ``ModelStatistics``) read them as
they are. Under prometheus_client's multiprocess mode (``--workers N``) a collector would see
its own process only, so there ``CountedStats`` also adds each number to a gauge that is
summed over the processes (the statistics endpoints still answer for one process).

A deployment has its own ``ModelStats`` (version ""), as a Triton ensemble has beside the
models it runs: its requests, whichever model answered, and those refused before routing.
A model's counts are its own executions: as the answering model, direct calls and shadow
micro-batches (one execution, several requests, as Triton's dynamic batcher counts them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

LABELS = ("model", "version")


class ModelStats:
    """Cumulative counts and durations of one model version (or deployment)."""

    __slots__ = ("compute_s", "executions", "fail_s", "failures", "inferences", "last_s",
                 "name", "success_s", "successes", "version")

    def __init__(self, name: str, version: str) -> None:
        self.name = name
        self.version = version
        self.successes = 0
        self.success_s = 0.0  # request durations of the successes, summed
        self.failures = 0
        self.fail_s = 0.0
        self.inferences = 0  # rows (Triton's inference count: batch sizes summed)
        self.executions = 0  # model calls
        self.compute_s = 0.0  # time in the model call, per request (counted once per success)
        self.last_s = 0.0  # wall-clock time of the last success

    def succeeded(self, rows: int, duration_s: float, compute_s: float) -> None:
        """One request answered in ``duration_s``, of which the model took ``compute_s``."""
        self.successes += 1
        self.success_s += duration_s
        self.inferences += rows
        self.executions += 1
        self.compute_s += compute_s
        self.last_s = time.time()

    def failed(self, duration_s: float) -> None:
        self.failures += 1
        self.fail_s += duration_s

    def executed(self, ok: int, failed: int, rows: int, compute_s: float) -> None:
        """One call for a micro-batch of ``ok + failed`` requests (shadows): each request is
        charged the call's time, as Triton charges every request of a batch."""
        self.executions += 1
        self.inferences += rows
        if ok:
            self.successes += ok
            self.success_s += compute_s * ok
            self.compute_s += compute_s * ok
            self.last_s = time.time()
        if failed:
            self.failures += failed
            self.fail_s += compute_s * failed

    def as_triton(self) -> dict[str, Any]:
        """Triton's ``ModelStatistics`` JSON (durations in ns; nothing is queued or cached)."""

        def duration(count: int, seconds: float) -> dict[str, int]:
            return {"count": count, "ns": round(seconds * 1e9)}

        n = self.successes
        return {
            "name": self.name, "version": self.version,
            "last_inference": round(self.last_s * 1000),
            "inference_count": self.inferences, "execution_count": self.executions,
            "inference_stats": {
                "success": duration(n, self.success_s),
                "fail": duration(self.failures, self.fail_s),
                "queue": duration(n, 0.0),
                "compute_input": duration(n, 0.0),
                "compute_infer": duration(n, self.compute_s),
                "compute_output": duration(n, 0.0),
                "cache_hit": duration(0, 0.0),
                "cache_miss": duration(0, 0.0),
            },
            "batch_stats": [],
        }


# Triton's counters: (name, help, value of a ModelStats).
FAMILIES: tuple[tuple[str, str, Callable[[ModelStats], float]], ...] = (
    ("nv_inference_request_success", "Number of successful inference requests",
     lambda s: s.successes),
    ("nv_inference_request_failure", "Number of failed inference requests",
     lambda s: s.failures),
    ("nv_inference_count", "Number of inferences performed (rows; does not include cached "
     "requests)", lambda s: s.inferences),
    ("nv_inference_exec_count", "Number of model executions performed",
     lambda s: s.executions),
    ("nv_inference_request_duration_us", "Cumulative inference request duration in "
     "microseconds (successful requests)", lambda s: s.success_s * 1e6),
    ("nv_inference_queue_duration_us", "Cumulative inference queuing duration in "
     "microseconds (the gateway queues no request)", lambda s: 0.0),
    ("nv_inference_compute_infer_duration_us", "Cumulative compute inference duration in "
     "microseconds", lambda s: s.compute_s * 1e6),
)


class TritonCollector(Collector):
    """Triton's counter families, read from every ``ModelStats`` at scrape time. They are
    exposed untyped under Triton's exact names (prometheus_client would add ``_total`` to
    a counter's), so that Triton dashboards find them."""

    def __init__(self, stats: Mapping[tuple[str, str], ModelStats]) -> None:
        self._stats = stats

    def describe(self) -> list[Metric]:
        return []  # registering must not read the numbers; names cannot clash (nv_ prefix)

    def collect(self) -> Iterator[Metric]:
        every = list(self._stats.values())
        for name, doc, value in FAMILIES:
            family = Metric(name, doc, "unknown")
            for s in every:
                family.add_sample(name, {"model": s.name, "version": s.version},
                                  float(value(s)))
            yield family


class CountedStats(ModelStats):
    """ModelStats that also add to gauges summed over processes (multiprocess mode)."""

    __slots__ = ("_gauges",)

    def __init__(self, name: str, version: str, gauges: dict[str, Gauge]) -> None:
        super().__init__(name, version)
        self._gauges = {key: gauge.labels(name, version) for key, gauge in gauges.items()}

    def succeeded(self, rows: int, duration_s: float, compute_s: float) -> None:
        super().succeeded(rows, duration_s, compute_s)
        g = self._gauges
        g["nv_inference_request_success"].inc()
        g["nv_inference_count"].inc(rows)
        g["nv_inference_exec_count"].inc()
        g["nv_inference_request_duration_us"].inc(duration_s * 1e6)
        g["nv_inference_compute_infer_duration_us"].inc(compute_s * 1e6)

    def failed(self, duration_s: float) -> None:
        super().failed(duration_s)
        self._gauges["nv_inference_request_failure"].inc()

    def executed(self, ok: int, failed: int, rows: int, compute_s: float) -> None:
        super().executed(ok, failed, rows, compute_s)
        g = self._gauges
        g["nv_inference_exec_count"].inc()
        g["nv_inference_count"].inc(rows)
        if ok:
            g["nv_inference_request_success"].inc(ok)
            g["nv_inference_request_duration_us"].inc(compute_s * 1e6 * ok)
            g["nv_inference_compute_infer_duration_us"].inc(compute_s * 1e6 * ok)
        if failed:
            g["nv_inference_request_failure"].inc(failed)


class StatsBook:
    """Every ``ModelStats`` of the process, by (name, version); they outlive config reloads
    so that the counters only grow."""

    def __init__(self, registry: CollectorRegistry, multiprocess: bool) -> None:
        self.stats: dict[tuple[str, str], ModelStats] = {}
        self._gauges: dict[str, Gauge] | None = None
        if multiprocess:
            self._gauges = {name: Gauge(name, doc, LABELS, registry=registry,
                                        multiprocess_mode="sum")
                            for name, doc, _ in FAMILIES}
        else:
            registry.register(TritonCollector(self.stats))

    def get(self, name: str, version: str) -> ModelStats:
        stats = self.stats.get((name, version))
        if stats is None:
            stats = (ModelStats(name, version) if self._gauges is None
                     else CountedStats(name, version, self._gauges))
            self.stats[name, version] = stats
        return stats
