"""A prototype of a faster Redis source for reports, for the lead to judge (not product code).

Same records, same Batches' contents and same report as gateway/analysis/sources.py's
RedisSource (tests/test_report_bench.py checks it), three changes:

1. The next XRANGE page is requested before the current one is decoded, so Redis serialises
   page n+1 while this process decodes page n (Redis is another process, on another core).
2. XRANGE replies are taken as RESP arrays, without redis-py's callback that builds a dict per
   entry (a client sharing the caller's connection pool, with its own callbacks).
3. Pages are gathered into batches of ``batch`` records before to_batch and the accumulators,
   whose costs per call (numpy set-up, per-model loops) are then paid per 16k records, not
   per 1,000.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from gateway.analysis.batch import Batch
from gateway.analysis.decode import Feedback, Layout, Record, decode_page, to_batch
from gateway.analysis.sources import SourceStats, as_feedback, no_cyclic_gc
from gateway.predlog import keys
from gateway.predlog.feedback import get_feedback
from gateway.predlog.reader import DEFAULT_PAGE, DEFAULT_SKEW_S
from gateway.predlog.record import STREAM_FIELD

BATCH = 16_384


def _raw(response: Any, **options: Any) -> Any:
    return response


class FastRedisSource:
    """RedisSource with prefetched raw pages and larger batches (see the module docstring)."""

    name = "redis"

    def __init__(self, redis: Redis, deployment: str, *, since: float | None,
                 until: float | None, page: int = DEFAULT_PAGE, batch: int = BATCH,
                 skew_s: float | None = DEFAULT_SKEW_S) -> None:
        self.redis = redis
        self.deployment = deployment
        self.since, self.until = since, until
        self.page, self.batch, self.skew_s = page, batch, skew_s
        self.stats = SourceStats()

    async def pages(self) -> AsyncIterator[list[bytes]]:
        """The stream's payloads from ``since - skew_s`` on, a page requested ahead."""
        raw = Redis(connection_pool=self.redis.connection_pool)  # own callbacks, same pool
        raw.set_response_callback("XRANGE", _raw)
        key = keys.pairs(self.deployment)
        start: Any = "-"
        if self.since is not None and self.skew_s is not None:
            start = f"{max(0, int((self.since - self.skew_s) * 1000))}-0"

        def ask(first: Any) -> asyncio.Future[Any]:
            return asyncio.ensure_future(raw.execute_command(  # type: ignore[no-untyped-call]
                "XRANGE", key, first, "+", "COUNT", self.page))

        task: asyncio.Future[Any] | None = ask(start)
        try:
            while task is not None:
                entries = await task or []
                task = ask(b"(" + entries[-1][0]) if len(entries) == self.page else None
                self.stats.entries += len(entries)
                payloads = []
                for _, fields in entries:
                    raw_payload = _field(fields)
                    if raw_payload is None:
                        self.stats.undecodable += 1
                    else:
                        payloads.append(raw_payload)
                yield payloads
        finally:
            if task is not None:
                task.cancel()

    async def batches(self, layout: Layout) -> AsyncIterator[Batch]:
        seen: set[str] = set()
        since, until = self.since, self.until
        pending: list[Record] = []
        async for payloads in self.pages():
            with no_cyclic_gc():
                records, bad = decode_page(payloads)
                self.stats.undecodable += bad
                for record in records:
                    ts = record.ts
                    if (since is not None and ts < since) or (until is not None and ts >= until):
                        continue
                    if record.request_id in seen:
                        self.stats.duplicates += 1
                        continue
                    seen.add(record.request_id)
                    pending.append(record)
            if len(pending) >= self.batch:
                yield await self._batch(pending, layout)
                pending = []
        if pending:
            yield await self._batch(pending, layout)

    async def _batch(self, records: list[Record], layout: Layout) -> Batch:
        stored = await get_feedback(self.redis, self.deployment, (r.request_id for r in records))
        found: dict[str, Feedback] = {k: as_feedback(v) for k, v in stored.items()}
        by_v2 = [r.id for r in records if r.id and r.request_id not in found]
        if by_v2:
            more = await get_feedback(self.redis, self.deployment, by_v2)
            found.update({k: as_feedback(v) for k, v in more.items()})
        with no_cyclic_gc():
            batch = to_batch(records, found, layout)
        self.stats.records += len(records)
        return batch


def _field(fields: Any) -> bytes | None:
    """The record field of a stream entry's [name, value, ...] list."""
    if not isinstance(fields, list):
        return None
    for i in range(0, len(fields) - 1, 2):
        if fields[i] == STREAM_FIELD:
            value = fields[i + 1]
            return value if isinstance(value, bytes) else None
    return None
