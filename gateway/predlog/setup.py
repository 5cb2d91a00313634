"""Opening the prediction log for the app: Redis (external or embedded) + spool + writer.

With several worker processes each one claims its own spool directory (``spool/w<N>``; the
Spool holds an flock on it), so segments are never appended to by two processes, and a
restarted worker picks up (and replays) whatever the previous holder of that slot left.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config.load import LoadedConfig
from gateway.metrics import Metrics
from gateway.predlog import redisconn
from gateway.predlog.embedded import EmbeddedRedis
from gateway.predlog.sink import MemorySink, RecordSink
from gateway.predlog.spool import Spool
from gateway.predlog.writer import LogWriter, Retention
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
    spool: Spool | None = None

    async def close(self, timeout: float) -> None:
        if self.writer is not None:
            await self.writer.close(timeout)
        if self.redis is not None:
            await self.redis.aclose()
        if self.spool is not None:
            self.spool.close()
        if self.embedded is not None and self.embedded.owned:
            await asyncio.to_thread(self.embedded.stop)


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
    spool = claim_spool(settings.state_dir / "spool", settings.spool_max_bytes, metrics)
    writer = LogWriter(redis, spool, metrics, flush_interval=settings.flush_interval_s,
                       replay_rate=settings.replay_rate,
                       retention=retention_of(loaded))
    writer.start()
    return PredictionLog(writer, redis, writer, embedded, spool)
