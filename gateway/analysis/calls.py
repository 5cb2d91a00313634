"""Per-request facts: traffic, label coverage and delay, and every model's calls.

A model's calls are counted per request (one call per request, whatever its rows), by the
role it played; latencies go into log-bucketed histograms (stats.LogHistogram). Shadow calls
are micro-batched, so a shadow's latency is that of its batch: it is reported, but compared
with the champion's only where both answered callers (a canary).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gateway.analysis.batch import ABSENT, DROPPED, ERROR, OK, SHED, TIMEOUT, Batch
from gateway.analysis.stats import LogHistogram


@dataclass
class Calls:
    """One model's calls in one role: counts by status and the latency of answered ones."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros(6, np.int64))  # by status code
    latency: LogHistogram = field(default_factory=LogHistogram)

    def add(self, status: np.ndarray, latency_ms: np.ndarray) -> None:
        self.counts += np.bincount(status, minlength=6)[:6]
        ok = (status == OK) & np.isfinite(latency_ms)
        if ok.any():
            self.latency = self.latency.add(latency_ms[ok].astype(np.float64))

    @property
    def asked(self) -> int:
        return int(self.counts[OK:].sum())

    def count(self, code: int) -> int:
        return int(self.counts[code])

    @property
    def failed(self) -> int:
        return int(self.counts[ERROR] + self.counts[TIMEOUT])

    @property
    def not_sampled(self) -> int:
        return int(self.counts[DROPPED] + self.counts[SHED])


@dataclass
class TrafficAccumulator:
    """Records, time span, variants, labels and each model's calls by role."""

    records: int = 0
    rows: int = 0
    first: float = np.inf
    last: float = -np.inf
    canary_records: int = 0
    labelled_records: int = 0
    label_delay: LogHistogram = field(default_factory=lambda: LogHistogram(min_value=1e-3,
                                                                          max_value=1e8))
    calls: dict[tuple[str, int], Calls] = field(default_factory=dict)  # (model, role) -> calls

    def add(self, batch: Batch) -> None:
        if batch.records == 0:
            return
        self.records += batch.records
        self.rows += batch.rows
        self.first = min(self.first, float(batch.ts.min()))
        self.last = max(self.last, float(batch.ts.max()))
        self.canary_records += int((batch.variant == 1).sum())
        delay = batch.label_delay_s[np.isfinite(batch.label_delay_s)]
        self.labelled_records += int(delay.size)
        if delay.size:
            self.label_delay = self.label_delay.add(np.maximum(delay, 0.0))
        for key, cols in batch.models.items():
            present = cols.status != ABSENT
            for role in np.unique(cols.role[present]):
                mask = present & (cols.role == role)
                self.calls.setdefault((key, int(role)), Calls()).add(
                    cols.status[mask], cols.latency_ms[mask])

    @property
    def per_second(self) -> float | None:
        span = self.last - self.first
        return self.records / span if self.records > 1 and span > 0 else None
