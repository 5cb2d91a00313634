"""The plain-number families expose exactly what prometheus_client's classes would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from gateway.metrics import LATENCY_BUCKETS
from gateway.plainmetrics import PlainCounterFamily, PlainHistogramFamily

# On a bound (le is inclusive), between bounds, below the first, past the last, zero.
VALUES = (0.0, 0.0001, 0.00011, 0.001, 0.0099, 0.01, 0.3, 10.0, 11.0, 1e9, 0.00005)


def _exposition(build: bool) -> list[bytes]:
    registry = CollectorRegistry()
    labels = ("model_name", "model_version")
    if build:
        counter = PlainCounterFamily("requests", "Requests", labels)
        histogram = PlainHistogramFamily("latency_seconds", "Latency", labels, LATENCY_BUCKETS)
        registry.register(counter)
        registry.register(histogram)
        inc = counter.labels("a", "1").inc
        observe = histogram.labels("a", "1").observe
        histogram.labels("b", "2")  # a child never observed still shows, all zeros
        inc_b = counter.labels("b", "2").inc
    else:
        c = Counter("requests", "Requests", labels, registry=registry)
        h = Histogram("latency_seconds", "Latency", labels, buckets=LATENCY_BUCKETS,
                      registry=registry)
        inc, observe = c.labels("a", "1").inc, h.labels("a", "1").observe
        h.labels("b", "2")
        inc_b = c.labels("b", "2").inc
    for value in VALUES:
        inc()
        observe(value)
    inc_b(2.5)
    return sorted(line for line in generate_latest(registry).splitlines()
                  if not line.startswith(b"#") and b"_created" not in line)


def test_plain_families_expose_what_prometheus_client_would() -> None:
    plain, reference = _exposition(True), _exposition(False)
    assert plain == reference
    assert b'latency_seconds_bucket{le="0.0001",model_name="a",model_version="1"} 3.0' in plain


def test_plain_family_refuses_what_prometheus_client_refuses() -> None:
    family = PlainCounterFamily("requests", "Requests", ("deployment", "variant"))
    with pytest.raises(ValueError, match="expected labels"):
        family.labels("only-one")
    with pytest.raises(ValueError, match="non-negative"):
        family.labels("d", "champion").inc(-1)


def test_a_plain_family_name_clashes_like_any_other() -> None:
    registry = CollectorRegistry()
    registry.register(PlainCounterFamily("requests", "Requests", ()))
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Counter("requests", "Again", registry=registry)
