"""Opening the prediction log for the app: Redis (external or embedded) + spool + writer.

With several worker processes each one claims its own spool directory (``spool/w<N>``,
held by an flock), so segments are never appended to by two processes, and a restarted
worker picks up (and replays) whatever the previous holder of that slot left behind.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.metrics import Metrics
from gateway.predlog import redisconn
from gateway.predlog.embedded import EmbeddedRedis
from gateway.predlog.sink import MemorySink, RecordSink
from gateway.predlog.spool import Spool
from gateway.predlog.writer import LogWriter, Retention
from gateway.rollout.load import LoadedConfig
from gateway.settings import Settings

log = logging.getLogger(__name__)


class NullSink:
    """Discards records (``SHADOWGATE_LOG=off``)."""

    def submit(self, record: Any) -> None:
        return None


@dataclass
class PredictionLog:
    sink: RecordSink
    redis: Any = None
    writer: LogWriter | None = None
    embedded: EmbeddedRedis | None = None
    _lock_fd: int | None = field(default=None, repr=False)

    async def close(self, timeout: float) -> None:
        if self.writer is not None:
            await self.writer.close(timeout)
        if self.redis is not None:
            await self.redis.aclose()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
        if self._lock_fd is not None:
            os.close(self._lock_fd)


def claim_spool_dir(base: Path, slots: int = 256) -> tuple[Path, int]:
    """The first ``base/w<N>`` no other live process holds; returns it and the lock's fd."""
    base.mkdir(parents=True, exist_ok=True)
    for n in range(slots):
        path = base / f"w{n}"
        path.mkdir(exist_ok=True)
        fd = os.open(path / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return path, fd
    raise RuntimeError(f"{base}: all {slots} spool slots are held by other processes")


def retention_of(loaded: LoadedConfig) -> dict[str, Retention]:
    return {d.name: Retention(d.retention.max_len, d.retention.max_age_s)
            for d in loaded.config.deployments}


async def open_prediction_log(settings: Settings, loaded: LoadedConfig, metrics: Metrics,
                              sink: RecordSink | None = None) -> PredictionLog:
    """The sink named by ``settings.log`` (or the one passed in), started."""
    if sink is not None:
        return PredictionLog(sink)
    if settings.log == "memory":
        return PredictionLog(MemorySink())
    if settings.log == "off":
        return PredictionLog(NullSink())
    embedded = None
    url = settings.redis_url
    if url is None:
        embedded = EmbeddedRedis(settings.state_dir / "redis")
        await asyncio.to_thread(embedded.start)
        url = embedded.url
        log.info("prediction log: embedded Redis at %s", url)
    redis = redisconn.client(url)
    spool_dir, lock_fd = claim_spool_dir(settings.state_dir / "spool")
    spool = Spool(spool_dir, settings.spool_max_bytes, metrics=metrics)
    writer = LogWriter(redis, spool, metrics, flush_interval=settings.flush_interval_s,
                       retention=retention_of(loaded))
    writer.start()
    return PredictionLog(writer, redis, writer, embedded, lock_fd)
