"""RedisLink: the writer's and the replayer's shared view of Redis.

One client, whether Redis answers (``up``, probed when it does not), the skew between its clock
and ours (stream ids are Redis's wall-clock milliseconds), the per-deployment retention, and
the one way both write a batch: an atomic Lua call per deployment (redisconn.write_batch) under
a timeout, reporting where a batch whose reply was lost may have landed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from redis.asyncio import Redis
from redis.exceptions import ExecAbortError

from gateway.metrics import Metrics
from gateway.predlog import redisconn
from gateway.predlog.redisconn import DEFAULT_RETENTION, Frame, Retention, Window

log = logging.getLogger(__name__)


class RedisLink:
    """Writes batches to Redis and knows whether it answers."""

    def __init__(self, redis: Redis, metrics: Metrics, *, write_timeout: float = 0.5,
                 retention: Mapping[str, Retention] | None = None,
                 default_retention: Retention = DEFAULT_RETENTION, dedup_slack: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        """``retention`` maps deployment -> Retention (others get ``default_retention``);
        ``dedup_slack`` widens, in seconds, the window searched for a batch of unknown
        outcome; ``clock`` is wall-clock seconds."""
        self.redis = redis
        self.write_timeout = write_timeout
        self._metrics = metrics
        self._retention = dict(retention or {})
        self._default_retention = default_retention
        self._slack_ms = int(dedup_slack * 1000)
        self._clock = clock
        self._skew_ms = 0.0  # Redis clock minus ours, measured by each probe
        self._up = True
        self._down_listeners: list[Callable[[], None]] = []
        metrics.log_redis_up.set(1)

    @property
    def up(self) -> bool:
        return self._up

    def set_retention(self, retention: Mapping[str, Retention]) -> None:
        """Replace the per-deployment retention (after a config reload)."""
        self._retention = dict(retention)

    async def write(self, frames: Sequence[Frame]) -> tuple[bool, Window | None]:
        """Send one batch: (written, None), or (not written, where it may have landed; None
        when Redis refused it whole, so it did not)."""
        start_ms = self.server_ms()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.write_timeout):
                rejected = await redisconn.write_batch(
                    self.redis, frames, self._retention_for, int(start_ms))
        except Exception as exc:
            self.mark_down(exc)
            aborted = isinstance(exc, ExecAbortError) or isinstance(exc.__cause__, ExecAbortError)
            return False, None if aborted else (
                int(start_ms) - self._slack_ms, int(self.server_ms()) + self._slack_ms)
        self._metrics.log_write_duration.observe(time.perf_counter() - started)
        self.mark_up()
        for frame, error in rejected:  # a permanent refusal (e.g. WRONGTYPE): retrying cannot help
            log.error("predlog: Redis refused record %r of %r: %s",
                      frame.request_id, frame.deployment, error)
        if rejected:
            self._metrics.log_dropped.labels("rejected").inc(len(rejected))
        return True, None

    async def already_written(self, frames: Sequence[Frame], windows: Sequence[Window]
                              ) -> set[str]:
        """Request ids of ``frames`` already in their streams within ``windows``."""
        async with asyncio.timeout(self.write_timeout * 10):
            return await redisconn.already_written(self.redis, frames, windows)

    async def probe(self) -> bool:
        """Ask Redis for its time (a PING that also measures clock skew); True when it answers."""
        try:
            async with asyncio.timeout(self.write_timeout):
                before = self._clock()
                server_ms = await redisconn.server_time_ms(self.redis)
                after = self._clock()
        except Exception:
            return False
        self._skew_ms = server_ms - (before + after) * 500.0
        self.mark_up()
        return True

    def on_down(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (in the loop's thread) each time Redis stops answering."""
        self._down_listeners.append(listener)

    def mark_down(self, exc: BaseException) -> None:
        was_up = self._up
        if was_up:
            log.warning("predlog: Redis write failed (%r); spooling until it answers", exc)
        self._up = False
        self._metrics.log_redis_up.set(0)
        if was_up:
            for listener in self._down_listeners:
                listener()

    def mark_up(self) -> None:
        if not self._up:
            log.info("predlog: Redis answers again; replaying the spool")
        self._up = True
        self._metrics.log_redis_up.set(1)

    def server_ms(self) -> float:
        """Now, on Redis's clock (the time in stream ids)."""
        return self._clock() * 1000.0 + self._skew_ms

    def window(self, start_ms: float) -> Window:
        """Where a write started at ``start_ms`` may land: up to its timeout, plus slack."""
        return (int(start_ms) - self._slack_ms,
                int(start_ms + self.write_timeout * 1000) + self._slack_ms)

    def _retention_for(self, deployment: str) -> Retention:
        return self._retention.get(deployment, self._default_retention)
