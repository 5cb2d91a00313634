"""LogWriter: the sink that batches paired records into Redis, spooling while Redis is away.

A record is safe once it is in Redis or in the fsynced spool. A kill -9 of the gateway loses only
what is still in memory: records submitted in the last ``flush_interval`` (0.05 s by default) plus
the batch in flight (at most the link's ``write_timeout``); while the writer falls behind (Redis
slower than the submit rate), the backlog in the queue as well. A graceful stop loses nothing:
``drain`` sends what is left to Redis or the spool.

Redis holds exactly one entry per request after an outage: a batch is one atomic Lua call per
deployment (all or nothing), the client never retries, and a batch whose reply was lost is spooled
with the window of stream ids where it may have landed; the replayer skips the request ids found
there (see replayer.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque

from gateway.metrics import Metrics
from gateway.predlog.link import RedisLink
from gateway.predlog.record import PairedRecord, encode
from gateway.predlog.redisconn import Frame, Window
from gateway.predlog.spool import Spool

log = logging.getLogger(__name__)

DROP_LOG_INTERVAL = 10.0  # seconds between two warnings about a full queue


class LogWriter:
    """Takes records from the request path without blocking and writes them in batches."""

    def __init__(self, link: RedisLink, spool: Spool, metrics: Metrics, *,
                 queue_size: int = 50_000, batch_size: int = 512, flush_interval: float = 0.05,
                 linger: float = 0.05, linger_batch: int = 64) -> None:
        """``linger``: once a record is queued, how long to let more gather before writing a
        batch of fewer than ``linger_batch`` records (off the request path some ms cost
        nothing, while a Redis call for every few records at a few hundred requests/s costs
        more CPU, here and in Redis, than the records themselves); capped by
        ``flush_interval``, the longest a record waits in memory. ``linger_batch`` ends the
        linger early, so that busy traffic is written in batches of about that size (a
        bigger batch is one longer turn of the event loop to encode)."""
        self.link = link
        self.spool = spool
        self.batch_size = batch_size
        self._fill = max(1, min(batch_size, linger_batch))
        self._metrics = metrics
        self._queue: deque[PairedRecord] = deque()
        self._queue_size = queue_size
        self._flush_interval = flush_interval
        self._linger = min(linger, flush_interval)
        self.submitted = 0  # records taken from the request path (the replayer paces by it)
        self._wake = asyncio.Event()
        self._filled = asyncio.Event()  # a full batch is queued: the linger ends early
        self._stop = asyncio.Event()
        self._closed = False
        self._drops_unlogged = 0
        self._last_drop_log = -math.inf

    # -- the request path --

    def submit(self, record: PairedRecord) -> None:
        """Queue a record; never blocks, never raises. Call from the event loop's thread."""
        try:
            if self._closed or len(self._queue) >= self._queue_size:
                self._drop_queued("closed" if self._closed else "queue_full")
                return
            self._queue.append(record)
            self.submitted += 1
            if not self._wake.is_set():
                self._wake.set()
            if len(self._queue) >= self._fill:
                self._filled.set()
        except Exception:  # the request path must not fail because of the log
            log.exception("predlog: submit failed")

    # -- the loop --

    async def run_once(self) -> int:
        """Write up to ``batch_size`` queued records, waiting at most ``flush_interval`` for one
        and then at most ``linger`` for the batch to fill; returns how many it took."""
        if not self._queue:
            self._wake.clear()
            try:
                async with asyncio.timeout(self._flush_interval):
                    await self._wake.wait()
            except TimeoutError:
                return 0
        if self._linger > 0 and len(self._queue) < self._fill and not self._stop.is_set():
            self._filled.clear()
            try:
                async with asyncio.timeout(self._linger):
                    await self._filled.wait()
            except TimeoutError:
                pass
        records = [self._queue.popleft() for _ in range(min(len(self._queue), self.batch_size))]
        self._metrics.log_queue_depth.set(len(self._queue))
        await self._deliver(self._encode(records))
        return len(records)

    async def run(self) -> None:
        """Repeat ``run_once`` until ``stop``; while nothing is queued, sleep without a timer
        (``submit`` and ``stop`` wake it), so that an idle gateway spends nothing here."""
        while not self._stop.is_set():
            try:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self.run_once()
            except Exception:  # a bug must not end the log for the life of the process
                log.exception("predlog: writer step failed")

    def stop(self) -> None:
        """Ask ``run`` to return after its current step (which then skips its linger)."""
        self._stop.set()
        self._wake.set()
        self._filled.set()

    async def drain(self, deadline: float) -> None:
        """After ``run`` has ended: send what is queued to Redis while it answers and time is
        left before ``deadline`` (loop time), the rest to the spool; later submits are dropped
        (and counted)."""
        loop = asyncio.get_running_loop()
        while self._queue:
            to_redis = self.link.up and deadline - loop.time() >= self.link.write_timeout
            # Out of time or Redis down: everything left goes to disk in one fsync.
            n = min(len(self._queue), self.batch_size) if to_redis else len(self._queue)
            frames = self._encode([self._queue.popleft() for _ in range(n)])
            if to_redis:
                await self._deliver(frames)
            else:
                await asyncio.to_thread(self.spool_frames, frames, None)
        self._closed = True
        self._metrics.log_queue_depth.set(0)

    # -- writing --

    def _encode(self, records: list[PairedRecord]) -> list[Frame]:
        frames = []
        for record in records:
            try:
                frames.append(Frame(record["deployment"], record["request_id"], encode(record),
                                    int(record["ts"] * 1000), record.get("id")))
            except Exception:
                self._metrics.log_dropped.labels("encode_error").inc()
                log.exception("predlog: cannot encode a record, dropped")
        return frames

    async def _deliver(self, frames: list[Frame]) -> None:
        if not frames:
            return
        uncertain: Window | None = None
        if self.link.up:
            start_ms = self.link.server_ms()
            try:
                done, uncertain = await self.link.write(frames)
            except asyncio.CancelledError:
                # Cancelled at shutdown mid-send: a blocking fsync now beats losing the batch.
                self.spool_frames(frames, self.link.window(start_ms))
                raise
            if done:
                self._metrics.log_written.inc(len(frames))
                return
        # A cancellation cannot lose this batch: the worker thread finishes the append anyway.
        await asyncio.to_thread(self.spool_frames, frames, uncertain)

    def spool_frames(self, frames: list[Frame], uncertain: Window | None) -> None:
        """Append to the spool (blocking: fsync); a failure drops the frames and counts them."""
        try:
            self.spool.append([f.payload for f in frames], uncertain)
        except Exception:
            self._metrics.log_dropped.labels("spool_error").inc(len(frames))
            log.exception("predlog: cannot spool %d records, dropped", len(frames))
            return
        self._metrics.log_spooled.inc(len(frames))

    def _drop_queued(self, reason: str) -> None:
        self._metrics.log_dropped.labels(reason).inc()
        self._drops_unlogged += 1
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL:
            log.warning("predlog: %d records dropped (%s) since the last warning",
                        self._drops_unlogged, reason)
            self._drops_unlogged, self._last_drop_log = 0, now
