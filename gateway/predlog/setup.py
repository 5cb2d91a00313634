"""Opening the prediction log for the app: Redis (external or embedded) + spool + writer + replayer.

``open_prediction_log`` is an async context manager: on the way in it starts what the settings
ask for, on the way out it stops it in reverse (the loops first, then the queue drained to Redis
or the spool, then the client, the spool and the embedded Redis), also when start-up fails half
way. With several worker processes each one claims its own spool directory (``spool/w<N>``; the
Spool holds an flock on it), so segments are never appended to by two processes, and a restarted
worker picks up (and replays) whatever the previous holder of that slot left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from gateway.aio import finish
from gateway.config.load import LoadedConfig
from gateway.metrics import Metrics
from gateway.predlog import redisconn
from gateway.predlog.embedded import EmbeddedRedis
from gateway.predlog.link import RedisLink
from gateway.predlog.redisconn import Retention
from gateway.predlog.replayer import Replayer
from gateway.predlog.sink import MemorySink, RecordSink
from gateway.predlog.spool import Spool
from gateway.predlog.writer import LogWriter
from gateway.settings import Settings

log = logging.getLogger(__name__)


class NullSink:
    """Discards records (``SHADOWGATE_LOG=off``)."""

    def submit(self, record: Any) -> None:
        return None


@dataclass
class PredictionLog:
    sink: RecordSink
    redis: Redis | None = None
    writer: LogWriter | None = None
    replayer: Replayer | None = None
    url: str | None = None  # where the Redis is, for readers with their own connection


def claim_spool(base: Path, max_bytes: int, metrics: Metrics, slots: int = 256) -> Spool:
    """A Spool on the first ``base/w<N>`` that no other live process holds."""
    for n in range(slots):
        try:
            return Spool(base / f"w{n}", max_bytes, metrics=metrics)
        except RuntimeError:  # held by another worker process
            continue
    raise RuntimeError(f"{base}: all {slots} spool slots are held by other processes")


def retention_of(loaded: LoadedConfig) -> dict[str, Retention]:
    return {d.name: Retention(d.retention.max_len, d.retention.max_age_s)
            for d in loaded.config.deployments}


@contextlib.asynccontextmanager
async def running_log(redis: Redis, spool: Spool, metrics: Metrics, *, timeout: float = 5.0,
                      flush_interval: float = 0.05, replay_rate: float = 5000.0,
                      probe_interval: float = 1.0, retention: dict[str, Retention] | None = None,
                      **writer_options: Any
                      ) -> AsyncIterator[PredictionLog]:
    """Writer and replayer running as tasks; on exit both stop and the queue is drained
    within ``timeout`` (to Redis while it answers, else to the spool)."""
    link = RedisLink(redis, metrics, retention=retention)
    writer = LogWriter(link, spool, metrics, flush_interval=flush_interval, **writer_options)
    replayer = Replayer(link, spool, metrics, live_count=lambda: writer.submitted,
                        batch_size=writer.batch_size, probe_interval=probe_interval,
                        replay_rate=replay_rate)
    tasks = (asyncio.create_task(writer.run(), name="predlog-writer"),
             asyncio.create_task(replayer.run(), name="predlog-replay"))
    try:
        yield PredictionLog(writer, redis, writer, replayer)
    finally:
        deadline = asyncio.get_running_loop().time() + timeout
        replayer.stop()
        writer.stop()
        # A replay step in flight may finish; cancelling one mid-send is safe (its attempt is on
        # disk), it only costs the next process a check of that window. A cancelled writer step
        # spools its batch on the way out.
        await finish(tasks[1], link.write_timeout)
        await finish(tasks[0], max(0.0, deadline - asyncio.get_running_loop().time()))
        await writer.drain(deadline)


@contextlib.asynccontextmanager
async def open_prediction_log(settings: Settings, loaded: LoadedConfig, metrics: Metrics,
                              sink: RecordSink | None = None) -> AsyncIterator[PredictionLog]:
    """The sink named by ``settings.log`` (or the one passed in), running until exit."""
    if sink is not None or settings.log != "redis":
        yield PredictionLog(sink or (MemorySink() if settings.log == "memory" else NullSink()))
        return
    async with contextlib.AsyncExitStack() as stack:
        url = settings.redis_url
        if url is None:
            embedded = EmbeddedRedis(settings.state_dir / "redis", nice=settings.redis_nice,
                                     extra_args=shlex.split(settings.redis_args))
            await asyncio.to_thread(embedded.start)
            if embedded.owned:  # never stop a server adopted from another gateway
                stack.push_async_callback(asyncio.to_thread, embedded.stop)
            url = embedded.url
            log.info("prediction log: embedded Redis at %s", url)
        redis = redisconn.client(url)
        stack.push_async_callback(redis.aclose)
        spool = claim_spool(settings.state_dir / "spool", settings.spool_max_bytes, metrics)
        stack.callback(spool.close)
        plog = await stack.enter_async_context(running_log(
            redis, spool, metrics, timeout=settings.shutdown_timeout_s / 2,
            flush_interval=settings.flush_interval_s, replay_rate=settings.replay_rate,
            retention=retention_of(loaded)))
        plog.url = url
        yield plog
