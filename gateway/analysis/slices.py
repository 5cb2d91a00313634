"""Reading a deployment's stream for a report, fast: in slices, in parallel when it is long.

A report over a million records spends its time decoding JSON and building columns, work that
one Python process does on one core. The stream is cut into slices by stream id (ids are
milliseconds), and each slice is read by a worker process with a Redis connection of its own:
XRANGE pages (raw replies, no per-entry dict), decoding, the time filter, the feedback HMGETs
and the columns, in batches of ``BATCH`` records; the main process only removes the repeated
request ids that a slice cannot see (a spool replay can land in a later slice) and feeds the
accumulators. A short stream is read the same way in one thread, without processes.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

import numpy as np
import redis

from gateway.analysis.batch import Batch
from gateway.analysis.decode import Feedback, Layout, Record, decode_page, to_batch
from gateway.analysis.sources import SourceStats, as_feedback, no_cyclic_gc
from gateway.predlog import keys
from gateway.predlog.feedback import HMGET_CHUNK, decode_stored
from gateway.predlog.reader import DEFAULT_PAGE, DEFAULT_SKEW_S
from gateway.predlog.record import STREAM_FIELD

BATCH = 16_384  # records per batch handed to the accumulators
PARALLEL_FROM = 100_000  # stream entries from which worker processes pay for themselves
SLICES_PER_WORKER = 4  # more slices than workers, so an uneven slice does not hold up the end

Slice = tuple[str, str]  # stream ids: from (inclusive) to (inclusive; "+" for the end)


def _command(client: redis.Redis, *args: Any) -> Any:
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def _client(url: str) -> redis.Redis:
    client = redis.Redis.from_url(url, socket_timeout=60)
    client.set_response_callback("XRANGE", lambda response, **_: response)  # raw replies
    return client


def _payload(fields: Any) -> bytes | None:
    if isinstance(fields, list):
        for i in range(0, len(fields) - 1, 2):
            if fields[i] == STREAM_FIELD and isinstance(fields[i + 1], bytes):
                return bytes(fields[i + 1])
    return None


def _feedback(client: redis.Redis, deployment: str, records: list[Record]
              ) -> dict[str, Feedback]:
    key = keys.feedback(deployment)
    found: dict[str, Feedback] = {}

    def fetch(ids: list[str]) -> None:
        for start in range(0, len(ids), HMGET_CHUNK):
            chunk = ids[start:start + HMGET_CHUNK]
            for name, raw in zip(chunk, client.hmget(key, chunk), strict=True):
                stored = decode_stored(raw)
                if stored is not None:
                    found[name] = as_feedback(stored)

    fetch([r.request_id for r in records])
    fetch([r.id for r in records if r.id and r.request_id not in found])
    return found


def read_slice(url: str, deployment: str, layout: Layout, part: Slice,
               since: float | None, until: float | None, page: int = DEFAULT_PAGE,
               batch: int = BATCH) -> Iterator[tuple[Batch, list[str], dict[str, int]]]:
    """The slice's records with ``since <= ts < until``, as (batch, request ids, counters)."""
    client = _client(url)
    key = keys.pairs(deployment)
    start, end = part
    pending: list[Record] = []
    counts = {"entries": 0, "undecodable": 0}
    try:
        while True:
            entries = _command(client, "XRANGE", key, start, end, "COUNT", page) or []
            counts["entries"] += len(entries)
            payloads = []
            for _, fields in entries:
                payload = _payload(fields)
                if payload is None:
                    counts["undecodable"] += 1
                else:
                    payloads.append(payload)
            with no_cyclic_gc():
                records, bad = decode_page(payloads)
                counts["undecodable"] += bad
                pending.extend(r for r in records if (since is None or r.ts >= since)
                               and (until is None or r.ts < until))
            done = len(entries) < page
            if pending and (len(pending) >= batch or done):
                feedback = _feedback(client, deployment, pending)
                with no_cyclic_gc():
                    out = to_batch(pending, feedback, layout)
                yield out, [r.request_id for r in pending], counts
                pending, counts = [], {"entries": 0, "undecodable": 0}
            if done:
                if counts["entries"] or counts["undecodable"]:
                    yield _empty(layout), [], counts
                return
            start = "(" + entries[-1][0].decode()
    finally:
        client.close()


def _empty(layout: Layout) -> Batch:
    return to_batch([], {}, layout)


def _slice_job(args: tuple[str, str, Layout, Slice, float | None, float | None, int, int]
               ) -> list[tuple[Batch, list[str], dict[str, int]]]:
    """A worker process's whole slice (results are pickled back as numpy arrays)."""
    return list(read_slice(*args))


class SliceSource:
    """A deployment's stream for a report: sliced, and in worker processes when long."""

    name = "redis"

    def __init__(self, url: str, deployment: str, *, since: float | None,
                 until: float | None, skew_s: float | None = DEFAULT_SKEW_S,
                 workers: int | None = None, progress: Callable[[int], None] | None = None,
                 parallel_from: int = PARALLEL_FROM, batch: int = BATCH) -> None:
        self.url = url
        self.parallel_from, self.batch = parallel_from, batch
        self.deployment = deployment
        self.since, self.until, self.skew_s = since, until, skew_s
        self.workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
        self.progress = progress
        self.stats = SourceStats()

    def _plan(self) -> tuple[list[Slice], int]:
        """Slices of the window's stream ids, and the entries the stream holds."""
        client = _client(self.url)
        try:
            key = keys.pairs(self.deployment)
            total = int(client.xlen(key))
            first = _command(client, "XRANGE", key, self._start(), "+", "COUNT", 1)
            last = _command(client, "XREVRANGE", key, "+", "-", "COUNT", 1)
        finally:
            client.close()
        if not first or not last:
            return [], total
        lo = int(first[0][0].split(b"-")[0])
        hi = int(last[0][0].split(b"-")[0])
        count = 1 if total < self.parallel_from or self.workers < 2 else self.workers * \
            SLICES_PER_WORKER
        edges = np.linspace(lo, hi + 1, count + 1).astype(np.int64)
        parts = [(f"{edges[i]}-0", f"{edges[i + 1] - 1}-18446744073709551615")
                 for i in range(count)]
        parts[0] = (self._start(), parts[0][1])
        parts[-1] = (parts[-1][0], "+")
        return parts, total

    def _start(self) -> str:
        if self.since is not None and self.skew_s is not None:
            return f"{max(0, int((self.since - self.skew_s) * 1000))}-0"
        return "-"

    async def batches(self, layout: Layout) -> AsyncIterator[Batch]:
        loop = asyncio.get_running_loop()
        parts, _ = await asyncio.to_thread(self._plan)
        seen: set[str] = set()
        if len(parts) <= 1:
            chunks = read_slice(self.url, self.deployment, layout, parts[0], self.since,
                                self.until, batch=self.batch) if parts else iter(())
            while True:
                item = await asyncio.to_thread(next, chunks, None)
                if item is None:
                    return
                batch = self._keep(*item, seen)
                if batch is not None:
                    yield batch
        pool: Executor = ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("forkserver"))
        try:
            futures = [loop.run_in_executor(pool, _slice_job, (
                self.url, self.deployment, layout, part, self.since, self.until,
                DEFAULT_PAGE, self.batch)) for part in parts]
            for future in futures:  # in stream order, so that a first copy wins
                for item in await future:
                    batch = self._keep(*item, seen)
                    if batch is not None:
                        yield batch
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _keep(self, batch: Batch, ids: list[str], counts: dict[str, int], seen: set[str]
              ) -> Batch | None:
        """Count, and drop the records whose request id came before (a spool replay can
        repeat a record in a later slice; the first copy wins)."""
        self.stats.entries += counts["entries"]
        self.stats.undecodable += counts["undecodable"]
        if self.progress is not None:
            self.progress(counts["entries"])
        if not ids:
            return None
        keep = np.ones(len(ids), bool)
        for i, request_id in enumerate(ids):
            if request_id in seen:
                keep[i] = False
            else:
                seen.add(request_id)
        if not keep.all():
            self.stats.duplicates += int((~keep).sum())
            batch = batch.take(keep)
        self.stats.records += batch.records
        return batch
