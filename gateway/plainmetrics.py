"""Request-path metric families as plain numbers, exported when /metrics is scraped.

A prometheus_client child takes a lock and goes through a value object on every ``inc``
(a histogram ``observe`` does that twice); the request path updates four such series per
request. Here a counter child is a float attribute and a histogram child a list of
per-bucket counts found with ``bisect``, both updated without a lock: every update happens
on the event loop's thread (HTTP and gRPC share the loop). ``PlainCounterFamily`` and
``PlainHistogramFamily`` are registry collectors that turn them into the same exposition a
``Counter``/``Histogram`` would (names, ``_total``/``_bucket``/``_count``/``_sum``, ``le``
labels); their ``labels`` is prometheus_client's.

Under prometheus_client's multiprocess mode a collector sees its own process only, so
gateway/metrics.py uses the real classes there.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Generic, Protocol, TypeVar

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

Child = TypeVar("Child")


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


class _PlainFamily(Collector, Generic[Child]):
    """Children by label values, created on first use, as prometheus_client's ``labels``."""

    def __init__(self, name: str, doc: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.doc = doc
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], Child] = {}

    def _new(self) -> Child:
        raise NotImplementedError

    def labels(self, *values: str) -> Child:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._new()
        return child

    def describe(self) -> list[Metric]:
        return list(self.collect())  # the names, for the registry's clash check


class PlainCounterFamily(_PlainFamily[PlainCounter]):
    """A counter family of plain children."""

    def _new(self) -> PlainCounter:
        return PlainCounter()

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.doc, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(values, child.value)
        yield family


class PlainHistogramFamily(_PlainFamily[PlainHistogram]):
    """A histogram family of plain children with the bucket bounds ``buckets``."""

    def __init__(self, name: str, doc: str, labelnames: Sequence[str],
                 buckets: Sequence[float]) -> None:
        super().__init__(name, doc, labelnames)
        self.buckets = tuple(float(b) for b in buckets)

    def _new(self) -> PlainHistogram:
        return PlainHistogram(self.buckets)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(values, child.cumulative(), child.sum)
        yield family
