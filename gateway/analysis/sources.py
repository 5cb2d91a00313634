"""Where a report's records come from: the Redis stream (joined with feedback) as Batches.

Parquet archives are read by gateway/analysis/parquet.py into the same Batches. Records are
filtered by their own ``ts`` (``since <= ts < until``) and each request id counts once (a spool
replay can repeat a record; the first copy wins), as gateway/predlog/reader.py documents.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.asyncio import Redis

from gateway.analysis.batch import Batch
from gateway.analysis.decode import Feedback, Layout, Record, decode_page, to_batch
from gateway.predlog.feedback import get_feedback
from gateway.predlog.reader import DEFAULT_PAGE, DEFAULT_SKEW_S, ScanStats, iter_raw_pages


@dataclass
class SourceStats:
    """What a scan saw, for the report's traffic section and notes."""

    entries: int = 0
    records: int = 0
    duplicates: int = 0
    undecodable: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Source(Protocol):
    """Batches of a deployment's records in a time window."""

    name: str
    stats: SourceStats

    def batches(self, layout: Layout) -> AsyncIterator[Batch]: ...


@contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of acyclic records are decoded
    (reference counting frees them as usual); it ran every few hundred allocations and cost
    more than the decoding itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def as_feedback(stored: Mapping[str, Any]) -> Feedback:
    """A stored feedback value (gateway/predlog/feedback.py) as the decoder's Feedback."""
    outcomes = stored.get("outcomes") or {}
    return Feedback(stored.get("label"), outcomes if isinstance(outcomes, dict) else {},
                    float(stored.get("received") or stored.get("ts") or 0.0))


class RedisSource:
    """A deployment's stream in Redis, each page joined with its feedback (one HMGET per
    page, then one for the V2 body ids of the records still without feedback)."""

    name = "redis"

    def __init__(self, redis: Redis, deployment: str, *, since: float | None,
                 until: float | None, page: int = DEFAULT_PAGE,
                 skew_s: float | None = DEFAULT_SKEW_S,
                 progress: Callable[[int], None] | None = None,
                 seen: set[str] | None = None) -> None:
        """``seen``: request ids already counted (kept across calls to ``batches`` when the
        source is read again and again, as a rollout does)."""
        self.redis = redis
        self.deployment = deployment
        self.since, self.until = since, until
        self.page, self.skew_s = page, skew_s
        self.progress = progress
        self.stats = SourceStats()
        self.seen: set[str] = set() if seen is None else seen
        self.last_id: str | None = None  # where the last read ended

    async def batches(self, layout: Layout, end: str = "+") -> AsyncIterator[Batch]:
        """Records read after ``last_id`` (all of the window the first time) up to the
        stream id ``end``."""
        seen = self.seen
        scan = ScanStats()
        since, until = self.since, self.until
        async for payloads in iter_raw_pages(self.redis, self.deployment, since=since,
                                             page=self.page, skew_s=self.skew_s, stats=scan,
                                             after=self.last_id, end=end):
            self.last_id = scan.last_id or self.last_id
            if self.progress is not None:
                self.progress(len(payloads))
            with no_cyclic_gc():
                records, bad = decode_page(payloads)
                self.stats.undecodable += bad
                kept: list[Record] = []
                for record in records:
                    ts = record.ts
                    if (since is not None and ts < since) or (until is not None and ts >= until):
                        continue
                    if record.request_id in seen:
                        self.stats.duplicates += 1
                        continue
                    seen.add(record.request_id)
                    kept.append(record)
            if not kept:
                continue
            feedback = await self._feedback(kept)
            with no_cyclic_gc():
                batch = to_batch(kept, feedback, layout)
            self.stats.records += len(kept)
            yield batch
        self.stats.entries += scan.entries
        self.stats.undecodable += scan.undecodable

    async def _feedback(self, records: list[Record]) -> dict[str, Feedback]:
        stored = await get_feedback(self.redis, self.deployment, (r.request_id for r in records))
        found = {key: as_feedback(value) for key, value in stored.items()}
        by_v2 = [r.id for r in records if r.id and r.request_id not in found]
        if by_v2:
            more = await get_feedback(self.redis, self.deployment, by_v2)
            found.update({key: as_feedback(value) for key, value in more.items()})
        return found
