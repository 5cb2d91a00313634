"""Replayer: sends the spool back to Redis once it answers, oldest first and paced.

While Redis is down it probes every ``probe_interval``; while Redis answers and the spool is
empty it sleeps without a timer until a write fails (records are spooled only then). Once up,
each step sends the oldest
spooled chunk; a chunk that may already be in Redis (its earlier write's reply was lost, or a
replay of it was interrupted) is first checked against the stream ids where it may have landed,
and only what is missing is sent. The attempt is persisted before sending, so a crash mid-replay
costs the next process a check, never a duplicate. Replay gets what live traffic leaves of
``replay_rate`` records/s (at least a tenth), so catching up does not slow requests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from gateway.metrics import Metrics
from gateway.predlog import redisconn
from gateway.predlog.link import RedisLink
from gateway.predlog.spool import Spool

log = logging.getLogger(__name__)

REPLAY_MIN_SHARE = 0.1  # replay never slower than this share of replay_rate


def replay_pause(records: int, took_s: float, live_rate: float, replay_rate: float) -> float:
    """Seconds to wait after replaying ``records`` in ``took_s``: replay gets what the live
    rate leaves of ``replay_rate`` records/s, never less than REPLAY_MIN_SHARE of it."""
    rate = max(replay_rate * REPLAY_MIN_SHARE, replay_rate - live_rate)
    return max(0.0, records / rate - took_s)


class Replayer:
    """Probes Redis while it is down and replays the spool when it is back."""

    def __init__(self, link: RedisLink, spool: Spool, metrics: Metrics, *,
                 live_count: Callable[[], int], batch_size: int = 512,
                 probe_interval: float = 1.0, replay_rate: float = 5_000.0) -> None:
        """``live_count``: records the request path has submitted so far (for pacing)."""
        self.link = link
        self.spool = spool
        self._metrics = metrics
        self._live_count = live_count
        self._batch_size = batch_size
        self._probe_interval = probe_interval
        self._replay_rate = replay_rate
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()  # Redis went down, or stop
        link.on_down(self._wake.set)
        self._last: tuple[float, int] | None = None  # (loop time, live count) at the last step

    async def run_once(self) -> float:
        """One step: probe while down, else replay one chunk; returns the pause it asks for."""
        if not self.link.up:
            return 0.0 if await self.link.probe() else self._probe_interval
        if self.spool.bytes_held() == 0:
            return self._probe_interval
        loop = asyncio.get_running_loop()
        started = loop.time()
        consumed, records = await self._step()
        if not consumed:
            return self._probe_interval
        now, live = loop.time(), self._live_count()
        last_at, last_live = self._last or (started, live)
        self._last = (now, live)
        rate = (live - last_live) / max(now - last_at, 1e-3)
        return replay_pause(records, now - started, rate, self._replay_rate)

    async def replay_once(self) -> int:
        """Send the oldest spooled chunk to Redis; returns the records it took off the spool."""
        return (await self._step())[1]

    async def run(self) -> None:
        """Probe once, then repeat ``run_once`` (pausing as it asks) until ``stop``; with
        Redis up and nothing spooled, wait for Redis to go down instead of polling."""
        await self.link.probe()
        while not self._stop.is_set():
            self._wake.clear()
            try:
                pause = await self.run_once()
            except Exception:  # keep replaying after a bug rather than never again
                log.exception("predlog: replay step failed")
                pause = self._probe_interval
            if self.link.up and self.spool.bytes_held() == 0 and not self._wake.is_set():
                await self._wake.wait()
            else:
                await self._pause(pause)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def _step(self) -> tuple[bool, int]:
        """(whether a chunk was consumed, how many records it held)."""
        if not self.link.up:
            return False, 0
        chunk = await asyncio.to_thread(self.spool.read_chunk, self._batch_size)
        if chunk is None:
            return False, 0
        frames, unreadable = redisconn.parse_frames(chunk.frames)
        if unreadable:
            self._metrics.log_dropped.labels("spool_corrupt").inc(unreadable)
            log.error("predlog: %d unreadable records in the spool, dropped", unreadable)
        try:
            if chunk.windows and frames:
                present = await self.link.already_written(frames, chunk.windows)
                if present:
                    log.info("predlog: %d spooled records were already in Redis", len(present))
                frames = [f for f in frames if f.request_id not in present]
        except Exception as exc:
            self.link.mark_down(exc)
            return False, 0
        if frames:
            # Persisted before sending, so that after a lost reply or a crash the next try
            # checks this window first.
            window = self.link.window(self.link.server_ms())
            await asyncio.to_thread(self.spool.begin_attempt, chunk, window)
            done, _ = await self.link.write(frames)
            if not done:
                return False, 0
            self._metrics.log_replayed.inc(len(frames))
        await asyncio.to_thread(self.spool.commit, chunk)
        return True, len(chunk.frames)

    async def _pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        try:
            async with asyncio.timeout(seconds):
                await self._stop.wait()
        except TimeoutError:
            pass
