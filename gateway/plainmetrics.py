"""Request-path metric families as plain numbers, exported when /metrics is scraped.

A prometheus_client child takes a lock and goes through a value object on every ``inc``
(a histogram ``observe`` does that twice); the request path updates four such series per
request. Here a counter child is a float attribute and a histogram child a list of
per-bucket counts found with ``bisect``, both updated without a lock: every update happens
on the event loop's thread (HTTP and gRPC share the loop). ``PlainFamily`` is a registry
collector that turns them into the same exposition a ``Counter``/``Histogram`` would
(names, ``_total``/``_bucket``/``_count``/``_sum``, ``le`` labels).

Under prometheus_client's multiprocess mode a collector sees its own process only, so
gateway/metrics.py uses the real classes there.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Protocol

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class CounterChild(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class HistogramChild(Protocol):
    def observe(self, amount: float) -> None: ...


class PlainCounter:
    """One labelled counter: a number."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        self.value += amount


class PlainHistogram:
    """One labelled histogram: per-bucket (not cumulative) counts and the sum. A value goes
    to the first bucket whose upper bound is >= it, as in Prometheus (``le``)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: +Inf
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount

    def cumulative(self) -> list[tuple[str, float]]:
        out, total = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            out.append((floatToGoString(bound), float(total)))  # type: ignore[no-untyped-call]
        return out


class PlainFamily(Collector):
    """A counter (``buckets`` None) or histogram family of plain children."""

    def __init__(self, name: str, doc: str, labelnames: Sequence[str],
                 buckets: Sequence[float] | None = None) -> None:
        self.name = name
        self.doc = doc
        self.labelnames = tuple(labelnames)
        self.buckets = None if buckets is None else tuple(float(b) for b in buckets)
        self._children: dict[tuple[str, ...], PlainCounter | PlainHistogram] = {}

    def _family(self) -> Metric:
        if self.buckets is None:
            return CounterMetricFamily(self.name, self.doc, labels=self.labelnames)
        return HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)

    def describe(self) -> list[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for values, child in list(self._children.items()):
            if isinstance(child, PlainHistogram):
                assert isinstance(family, HistogramMetricFamily)
                family.add_metric(values, child.cumulative(), child.sum)
            else:
                assert isinstance(family, CounterMetricFamily)
                family.add_metric(values, child.value)
        yield family

    def _child(self, values: tuple[str, ...]) -> PlainCounter | PlainHistogram:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
        child = self._children.get(values)
        if child is None:
            child = PlainCounter() if self.buckets is None else PlainHistogram(self.buckets)
            self._children[values] = child
        return child

    def counter(self, *values: str) -> PlainCounter:
        child = self._child(tuple(str(v) for v in values))
        assert isinstance(child, PlainCounter)
        return child

    def histogram(self, *values: str) -> PlainHistogram:
        child = self._child(tuple(str(v) for v in values))
        assert isinstance(child, PlainHistogram)
        return child
