"""LogWriter: the sink that batches paired records into Redis streams, spooling while Redis is away.

A record is safe once it is in Redis or in the fsynced spool. A kill -9 of the gateway loses only
what is still in memory: records submitted in the last ``flush_interval`` (0.05 s by default) plus
the batch in flight (at most ``write_timeout``); while the writer falls behind (Redis slower than
the submit rate), the backlog in the queue as well. A graceful ``close`` loses nothing.

Redis holds exactly one entry per request after an outage: a batch is one MULTI/EXEC (all or
nothing), the client never retries, and a batch whose EXEC reply was lost is spooled with the
window of stream ids where it may have landed; replay skips the request ids found there.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping

from redis.asyncio import Redis
from redis.exceptions import ExecAbortError

from gateway.metrics import Metrics
from gateway.predlog import redisconn
from gateway.predlog.record import PairedRecord, encode
from gateway.predlog.redisconn import DEFAULT_RETENTION, Frame, Retention, Window
from gateway.predlog.spool import Spool

__all__ = ["DEFAULT_RETENTION", "LogWriter", "Retention", "replay_pause"]

log = logging.getLogger(__name__)

REPLAY_MIN_SHARE = 0.1  # replay never slower than this share of replay_rate
DROP_LOG_INTERVAL = 10.0  # seconds between two warnings about a full queue


def replay_pause(records: int, took_s: float, live_rate: float, replay_rate: float) -> float:
    """Seconds to wait after replaying ``records`` in ``took_s``: replay gets what the live
    rate leaves of ``replay_rate`` records/s, never less than REPLAY_MIN_SHARE of it."""
    rate = max(replay_rate * REPLAY_MIN_SHARE, replay_rate - live_rate)
    return max(0.0, records / rate - took_s)


class LogWriter:
    """Takes records from the request path without blocking and writes them to Redis in batches."""

    def __init__(
        self,
        redis: Redis,
        spool: Spool,
        metrics: Metrics,
        *,
        queue_size: int = 50_000,
        batch_size: int = 512,
        flush_interval: float = 0.05,
        linger: float = 0.005,
        write_timeout: float = 0.5,
        probe_interval: float = 1.0,
        replay_rate: float = 5_000.0,
        retention: Mapping[str, Retention] | None = None,
        default_retention: Retention = DEFAULT_RETENTION,
        dedup_slack: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``retention`` maps deployment -> Retention (others get ``default_retention``);
        ``linger``: once a record is queued, how long to let more gather before writing a
        batch that is not full yet (off the request path a few ms cost nothing, while a Redis
        call for every one or two records at moderate traffic costs CPU in this process and
        in Redis); ``dedup_slack`` widens, in seconds, the window searched for a batch of
        unknown outcome;
        ``replay_rate`` caps the records/s written to Redis by live traffic and replay
        together: the spool replays at ``replay_rate`` minus the live rate, never below a
        tenth of ``replay_rate``, so that catching up after an outage takes little of the
        event loop (and of Redis) away from requests while they are busy;
        ``clock`` is wall-clock seconds (Redis stream ids are wall-clock milliseconds)."""
        self._redis = redis
        self._spool = spool
        self._metrics = metrics
        self._queue: deque[PairedRecord] = deque()
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._linger = min(linger, flush_interval)
        self._write_timeout = write_timeout
        self._probe_interval = probe_interval
        self._replay_rate = replay_rate
        self._submitted = 0  # records taken from the request path, for replay pacing
        self._retention = dict(retention or {})
        self._default_retention = default_retention
        self._slack_ms = int(dedup_slack * 1000)
        self._clock = clock
        self._skew_ms = 0.0  # Redis clock minus ours, measured by each probe
        self._up = True
        self._wake = asyncio.Event()
        self._filled = asyncio.Event()  # a full batch is queued: the linger ends early
        self._stop = asyncio.Event()
        self._closed = False
        self._run_task: asyncio.Task[None] | None = None
        self._running: asyncio.Future[None] | None = None
        self._drops_unlogged = 0
        self._last_drop_log = -math.inf
        metrics.log_redis_up.set(1)

    # -- the request path --

    def submit(self, record: PairedRecord) -> None:
        """Queue a record; never blocks, never raises. Call from the event loop's thread."""
        try:
            if self._closed or len(self._queue) >= self._queue_size:
                self._drop_queued("closed" if self._closed else "queue_full")
                return
            self._queue.append(record)
            self._submitted += 1
            if not self._wake.is_set():
                self._wake.set()
            if len(self._queue) >= self._batch_size:
                self._filled.set()
        except Exception:  # the request path must not fail because of the log
            log.exception("predlog: submit failed")

    def set_retention(self, retention: Mapping[str, Retention]) -> None:
        """Replace the per-deployment retention (after a config reload)."""
        self._retention = dict(retention)

    @property
    def redis_up(self) -> bool:
        return self._up

    # -- the loop --

    async def run_once(self) -> int:
        """Write up to ``batch_size`` queued records, waiting at most ``flush_interval`` for one
        and then at most ``linger`` for the batch to fill."""
        if not self._queue:
            self._wake.clear()
            try:
                async with asyncio.timeout(self._flush_interval):
                    await self._wake.wait()
            except TimeoutError:
                return 0
        if self._linger > 0 and len(self._queue) < self._batch_size and not self._stop.is_set():
            self._filled.clear()
            try:
                async with asyncio.timeout(self._linger):
                    await self._filled.wait()
            except TimeoutError:
                pass
        records = [self._queue.popleft() for _ in range(min(len(self._queue), self._batch_size))]
        self._metrics.log_queue_depth.set(len(self._queue))
        await self._deliver(self._encode(records))
        return len(records)

    async def run(self) -> None:
        """Repeat ``run_once`` until ``stop``, with replay of the spool running beside it."""
        self._running = asyncio.get_running_loop().create_future()
        replay = asyncio.create_task(self._recover(), name="predlog-replay")
        try:
            while not self._stop.is_set():
                try:
                    await self.run_once()
                except Exception:  # a bug must not end the log for the life of the process
                    log.exception("predlog: writer step failed")
        finally:
            try:
                # Let a replay step in flight finish; cancelling one mid-send is safe (its attempt
                # is on disk), it only costs the next process a check of that window.
                async with asyncio.timeout(self._write_timeout):
                    await replay
            except (TimeoutError, asyncio.CancelledError):
                replay.cancel()
            self._running.set_result(None)

    def start(self) -> None:
        """Run the loop in a task that this writer keeps and ``close`` ends."""
        self._run_task = asyncio.create_task(self.run(), name="predlog-writer")

    def stop(self) -> None:
        """Ask ``run`` to return after its current step."""
        self._stop.set()
        self._wake.set()
        self._filled.set()

    async def close(self, timeout: float = 5.0) -> None:
        """Stop the loop; drain the queue to Redis or, when down or past ``timeout``, the spool."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.stop()
        if self._running is not None and not self._running.done():
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self._running)
            except TimeoutError:
                if self._run_task is not None:
                    self._run_task.cancel()  # its in-flight batch goes to the spool on the way out
        if self._run_task is not None:
            await asyncio.gather(self._run_task, return_exceptions=True)
        while self._queue:
            to_redis = self._up and deadline - loop.time() >= self._write_timeout
            # Out of time or Redis down: everything left goes to disk in one fsync.
            n = min(len(self._queue), self._batch_size) if to_redis else len(self._queue)
            frames = self._encode([self._queue.popleft() for _ in range(n)])
            if to_redis:
                await self._deliver(frames)
            else:
                await asyncio.to_thread(self._spool_frames, frames, None)
        self._closed = True
        self._metrics.log_queue_depth.set(0)

    # -- writing --

    def _encode(self, records: list[PairedRecord]) -> list[Frame]:
        frames = []
        for record in records:
            try:
                frames.append(Frame(record["deployment"], record["request_id"], encode(record)))
            except Exception:
                self._metrics.log_dropped.labels("encode_error").inc()
                log.exception("predlog: cannot encode a record, dropped")
        return frames

    async def _deliver(self, frames: list[Frame]) -> None:
        if not frames:
            return
        uncertain: Window | None = None
        if self._up:
            start_ms = self._server_ms()
            try:
                done, uncertain = await self._write(frames)
            except asyncio.CancelledError:
                # Cancelled at shutdown mid-send: a blocking fsync now beats losing the batch.
                self._spool_frames(frames, self._window(start_ms))
                raise
            if done:
                self._metrics.log_written.inc(len(frames))
                return
        # A cancellation cannot lose this batch: the worker thread finishes the append anyway.
        await asyncio.to_thread(self._spool_frames, frames, uncertain)

    async def _write(self, frames: list[Frame]) -> tuple[bool, Window | None]:
        """Send one batch; on failure say where it may have landed (None: it did not)."""
        start_ms = self._server_ms()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._write_timeout):
                rejected = await redisconn.write_batch(
                    self._redis, frames, self._retention_for, int(start_ms))
        except Exception as exc:
            self._mark_down(exc)
            aborted = isinstance(exc, ExecAbortError) or isinstance(exc.__cause__, ExecAbortError)
            return False, None if aborted else (
                int(start_ms) - self._slack_ms, int(self._server_ms()) + self._slack_ms)
        self._metrics.log_write_duration.observe(time.perf_counter() - started)
        self._mark_up()
        for frame, error in rejected:  # a permanent refusal (e.g. WRONGTYPE): retrying cannot help
            log.error("predlog: Redis refused record %s of %s: %s",
                      frame.request_id, frame.deployment, error)
        if rejected:
            self._metrics.log_dropped.labels("rejected").inc(len(rejected))
        return True, None

    def _spool_frames(self, frames: list[Frame], uncertain: Window | None) -> None:
        try:
            self._spool.append([f.payload for f in frames], uncertain)
        except Exception:
            self._metrics.log_dropped.labels("spool_error").inc(len(frames))
            log.exception("predlog: cannot spool %d records, dropped", len(frames))
            return
        self._metrics.log_spooled.inc(len(frames))

    # -- health and replay --

    async def probe(self) -> bool:
        """Ask Redis for its time (a PING that also measures clock skew); True when it answers."""
        try:
            async with asyncio.timeout(self._write_timeout):
                before = self._clock()
                server_ms = await redisconn.server_time_ms(self._redis)
                after = self._clock()
        except Exception:
            return False
        self._skew_ms = server_ms - (before + after) * 500.0
        self._mark_up()
        return True

    async def replay_once(self) -> int:
        """Send the oldest spooled chunk to Redis; returns the records it took off the spool."""
        return (await self._replay_step())[1]

    async def _replay_step(self) -> tuple[bool, int]:
        """(whether a chunk was consumed, how many records it held)."""
        if not self._up:
            return False, 0
        chunk = await asyncio.to_thread(self._spool.read_chunk, self._batch_size)
        if chunk is None:
            return False, 0
        frames, unreadable = redisconn.parse_frames(chunk.frames)
        if unreadable:
            self._metrics.log_dropped.labels("spool_corrupt").inc(unreadable)
            log.error("predlog: %d unreadable records in the spool, dropped", unreadable)
        try:
            if chunk.windows and frames:
                async with asyncio.timeout(self._write_timeout * 10):
                    present = await redisconn.already_written(self._redis, frames, chunk.windows)
                if present:
                    log.info("predlog: %d spooled records were already in Redis", len(present))
                frames = [f for f in frames if f.request_id not in present]
        except Exception as exc:
            self._mark_down(exc)
            return False, 0
        if frames:
            # Persisted before sending, so that after a lost reply or a crash the next try
            # checks this window first.
            now_ms = self._server_ms()
            await asyncio.to_thread(self._spool.begin_attempt, chunk, self._window(now_ms))
            done, _ = await self._write(frames)
            if not done:
                return False, 0
            self._metrics.log_replayed.inc(len(frames))
        await asyncio.to_thread(self._spool.commit, chunk)
        return True, len(chunk.frames)

    async def _recover(self) -> None:
        await self.probe()
        loop = asyncio.get_running_loop()
        last_at, last_submitted = loop.time(), self._submitted
        while not self._stop.is_set():
            try:
                if not self._up:
                    if not await self.probe():
                        await self._pause(self._probe_interval)
                    continue
                if self._spool.bytes_held() == 0:
                    await self._pause(self._probe_interval)
                    continue
                started = loop.time()
                consumed, records = await self._replay_step()
                if not consumed:
                    await self._pause(self._probe_interval)
                    continue
                now = loop.time()
                live = (self._submitted - last_submitted) / max(now - last_at, 1e-3)
                last_at, last_submitted = now, self._submitted
                await self._pause(replay_pause(records, now - started, live, self._replay_rate))
            except Exception:  # keep replaying after a bug rather than never again
                log.exception("predlog: replay step failed")
                await self._pause(self._probe_interval)

    async def _pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        try:
            async with asyncio.timeout(seconds):
                await self._stop.wait()
        except TimeoutError:
            pass

    # -- small helpers --

    def _mark_down(self, exc: BaseException) -> None:
        if self._up:
            log.warning("predlog: Redis write failed (%r); spooling until it answers", exc)
        self._up = False
        self._metrics.log_redis_up.set(0)

    def _mark_up(self) -> None:
        if not self._up:
            log.info("predlog: Redis answers again; replaying the spool")
        self._up = True
        self._metrics.log_redis_up.set(1)

    def _drop_queued(self, reason: str) -> None:
        self._metrics.log_dropped.labels(reason).inc()
        self._drops_unlogged += 1
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL:
            log.warning("predlog: %d records dropped (%s) since the last warning",
                        self._drops_unlogged, reason)
            self._drops_unlogged, self._last_drop_log = 0, now

    def _retention_for(self, deployment: str) -> Retention:
        return self._retention.get(deployment, self._default_retention)

    def _server_ms(self) -> float:
        return self._clock() * 1000.0 + self._skew_ms

    def _window(self, start_ms: float) -> Window:
        return (int(start_ms) - self._slack_ms,
                int(start_ms + self._write_timeout * 1000) + self._slack_ms)
