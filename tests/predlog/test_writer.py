from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from gateway.metrics import Metrics
from gateway.predlog import keys, redisconn
from gateway.predlog.link import RedisLink
from gateway.predlog.record import SCHEMA_VERSION, PairedRecord, decode, encode
from gateway.predlog.redisconn import Retention
from gateway.predlog.replayer import Replayer, replay_pause
from gateway.predlog.setup import running_log
from gateway.predlog.spool import Spool
from gateway.predlog.writer import LogWriter
from tests.helpers import apoll
from tests.redis_fixture import RedisServer

DEADLINE = 10.0


def record(i: int, deployment: str = "iris") -> PairedRecord:
    return {
        "v": SCHEMA_VERSION, "request_id": f"req-{i}", "ts": time.time(),
        "deployment": deployment, "revision": "r1", "key_hash": None, "bucket": i % 10000,
        "variant": "champion", "rows": 1,
        "predictions": [{"role": "champion", "model": "m", "version": "1", "served": True,
                         "status": "ok", "latency_ms": 0.1, "error": None,
                         "output": {"label": ["a"], "scores": [[0.9, 0.1]]}}],
        "inputs": None,
    }


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def request_ids(redis: Redis, deployment: str = "iris") -> list[str]:
    entries = await redis.xrange(keys.pairs(deployment)) or []
    return [decode((fields or {})[b"r"])["request_id"] for _, fields in entries]


def parts(redis: Redis, spool: Spool, metrics: Metrics, write_timeout: float = 0.5,
          retention: dict[str, Retention] | None = None, **writer_options: float
          ) -> tuple[RedisLink, LogWriter, Replayer]:
    """The three pieces of the log, not running: tests call their steps."""
    link = RedisLink(redis, metrics, write_timeout=write_timeout, retention=retention)
    writer = LogWriter(link, spool, metrics, **writer_options)  # type: ignore[arg-type]
    return link, writer, Replayer(link, spool, metrics, live_count=lambda: writer.submitted)


async def run_until_empty(writer: LogWriter) -> None:
    while await writer.run_once():
        pass


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def spool(tmp_path: Path, metrics: Metrics) -> Iterator[Spool]:
    spool = Spool(tmp_path / "spool", max_bytes=64 << 20, metrics=metrics)
    yield spool
    spool.close()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = redisconn.client(redis_server.url, timeout=1.0)
    yield client
    await client.aclose()


async def test_writes_one_entry_per_record_on_every_binary(
    redis_binaries: list[tuple[str, str]], tmp_path: Path
) -> None:
    for label, binary in redis_binaries:
        server = RedisServer(binary, tmp_path / label)
        metrics = Metrics()
        spool = Spool(tmp_path / f"spool-{label}", max_bytes=1 << 20, metrics=metrics)
        try:
            server.start()
            client = redisconn.client(server.url)
            _, writer, _ = parts(client, spool, metrics, batch_size=64)
            for i in range(300):
                writer.submit(record(i, "iris" if i % 3 else "wine"))
            await run_until_empty(writer)
            iris, wine = await request_ids(client, "iris"), await request_ids(client, "wine")
            await client.aclose()
        finally:
            server.close()
            spool.close()
        assert sorted(iris + wine) == sorted(f"req-{i}" for i in range(300)), label
        assert len(wine) == 100, label
        assert sample(metrics, "shadowgate_predlog_records_written_total") == 300
        assert sample(metrics, "shadowgate_predlog_redis_up") == 1
        assert spool.bytes_held() == 0


async def test_retention_by_length(redis: Redis, spool: Spool, metrics: Metrics) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for i in range(1000):
            pipe.xadd(keys.pairs("iris"), {b"r": b"old-%d" % i})
        await pipe.execute()
    retention = {"iris": Retention(max_len=100)}
    _, writer, _ = parts(redis, spool, metrics, retention=retention)
    writer.submit(record(0))
    await run_until_empty(writer)
    length = await redis.xlen(keys.pairs("iris"))
    assert 100 <= length < 300  # "~" trims whole stream nodes


async def test_retention_by_age(redis: Redis, spool: Spool, metrics: Metrics) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for i in range(1, 501):  # ids from 1970: far older than any retention
            pipe.xadd(keys.pairs("iris"), {b"r": b"old"}, id=f"{i}-0")
        await pipe.execute()
    retention = {"iris": Retention(max_len=None, max_age_s=3600)}
    _, writer, _ = parts(redis, spool, metrics, retention=retention)
    for i in range(10):
        writer.submit(record(i))
    await run_until_empty(writer)
    assert await request_ids(redis) == [f"req-{i}" for i in range(10)]


async def test_outage_spools_then_replay_leaves_exactly_one_entry_per_request(
    redis_server: RedisServer, redis: Redis, spool: Spool, metrics: Metrics
) -> None:
    link, writer, replayer = parts(redis, spool, metrics, batch_size=100)
    for i in range(100):
        writer.submit(record(i))
    await run_until_empty(writer)

    redis_server.stop(kill=True)
    for i in range(100, 400):
        writer.submit(record(i))
    await run_until_empty(writer)
    assert sample(metrics, "shadowgate_predlog_redis_up") == 0
    assert sample(metrics, "shadowgate_predlog_records_spooled_total") == 300
    assert not await link.probe()

    redis_server.start()
    assert await link.probe()
    assert sample(metrics, "shadowgate_predlog_redis_up") == 1
    for i in range(400, 450):  # new records keep flowing while the spool drains
        writer.submit(record(i))
        if i % 10 == 0:
            await replayer.replay_once()
            await writer.run_once()
    while await replayer.replay_once():
        pass
    await run_until_empty(writer)

    ids = await request_ids(redis)
    assert sorted(ids) == sorted(f"req-{i}" for i in range(450))
    assert spool.bytes_held() == 0
    assert sample(metrics, "shadowgate_predlog_records_replayed_total") == 300
    assert sample(metrics, "shadowgate_predlog_records_dropped_total", reason="queue_full") == 0


async def test_a_batch_whose_reply_was_lost_is_not_written_twice(
    redis_server: RedisServer, redis: Redis, spool: Spool, metrics: Metrics
) -> None:
    link, writer, replayer = parts(redis, spool, metrics, write_timeout=0.2)
    writer.submit(record(0))
    await run_until_empty(writer)  # opens the pooled connection while Redis answers

    redis_server.pause()  # the batch reaches Redis's socket, the reply never comes back
    for i in range(1, 51):
        writer.submit(record(i))
    await run_until_empty(writer)
    assert not link.up
    redis_server.resume()

    with redis_server.client() as check:  # the lost-reply batch did land
        await apoll(lambda: check.xlen(keys.pairs("iris")) >= 51, DEADLINE, "the lost batch")
    assert await link.probe()
    while await replayer.replay_once():
        pass
    assert sorted(await request_ids(redis)) == sorted(f"req-{i}" for i in range(51))
    assert sample(metrics, "shadowgate_predlog_records_replayed_total") == 0
    assert spool.bytes_held() == 0


async def test_close_with_redis_down_spools_everything(
    redis_server: RedisServer, redis: Redis, spool: Spool, metrics: Metrics
) -> None:
    redis_server.stop(kill=True)
    _, writer, _ = parts(redis, spool, metrics, batch_size=50)
    for i in range(200):
        writer.submit(record(i))
    await writer.drain(asyncio.get_running_loop().time() + 1.0)
    assert sample(metrics, "shadowgate_predlog_records_spooled_total") == 200
    assert sample(metrics, "shadowgate_predlog_queue_depth") == 0
    writer.submit(record(200))
    assert sample(metrics, "shadowgate_predlog_records_dropped_total", reason="closed") == 1
    chunk = spool.read_chunk(1000)
    assert chunk is not None and len(chunk.frames) == 200


async def test_full_queue_drops_and_counts(redis: Redis, spool: Spool, metrics: Metrics) -> None:
    _, writer, _ = parts(redis, spool, metrics, queue_size=10)
    for i in range(25):
        writer.submit(record(i))
    assert sample(metrics, "shadowgate_predlog_records_dropped_total", reason="queue_full") == 15
    await run_until_empty(writer)
    assert len(await request_ids(redis)) == 10


async def test_records_that_arrive_during_the_linger_join_the_batch(
    redis: Redis, spool: Spool, metrics: Metrics
) -> None:
    # Moderate traffic: records trickle in one per loop iteration. Without a linger the writer
    # would send the first alone as soon as it wakes; with one, they share one Redis call,
    # sent as soon as the batch is full (not after the whole linger).
    _, writer, _ = parts(redis, spool, metrics, batch_size=4, linger=60.0,
                         flush_interval=60.0)
    step = asyncio.create_task(writer.run_once())
    writer.submit(record(0))
    for i in range(1, 4):
        for _ in range(5):
            await asyncio.sleep(0)  # the writer has woken and is lingering
        assert not step.done()
        writer.submit(record(i))
    assert await asyncio.wait_for(step, DEADLINE) == 4
    assert await request_ids(redis) == [f"req-{i}" for i in range(4)]


async def test_a_full_batch_is_written_without_lingering(
    redis: Redis, spool: Spool, metrics: Metrics
) -> None:
    _, writer, _ = parts(redis, spool, metrics, batch_size=8, linger=60.0)
    for i in range(8):
        writer.submit(record(i))
    assert await asyncio.wait_for(writer.run_once(), DEADLINE) == 8


async def test_stop_ends_the_linger(redis: Redis, spool: Spool, metrics: Metrics) -> None:
    _, writer, _ = parts(redis, spool, metrics, linger=60.0, flush_interval=60.0)
    step = asyncio.create_task(writer.run_once())
    writer.submit(record(0))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not step.done()
    writer.stop()
    assert await asyncio.wait_for(step, DEADLINE) == 1


async def test_run_loop_recovers_by_itself_and_close_drains(
    redis_server: RedisServer, redis: Redis, spool: Spool, metrics: Metrics
) -> None:
    async with running_log(redis, spool, metrics, probe_interval=0.02, flush_interval=0.01,
                           timeout=2.0) as log:
        assert log.writer is not None
        redis_server.stop(kill=True)
        for i in range(200):
            log.writer.submit(record(i))
        await apoll(lambda: sample(metrics, "shadowgate_predlog_records_spooled_total") == 200,
                    DEADLINE, "200 records spooled")
        redis_server.start()
        await apoll(lambda: spool.bytes_held() == 0, DEADLINE, "the spool replayed")
        for i in range(200, 300):
            log.writer.submit(record(i))
    assert sorted(await request_ids(redis)) == sorted(f"req-{i}" for i in range(300))
    assert sample(metrics, "shadowgate_predlog_redis_up") == 1


async def test_a_refused_transaction_is_spooled_as_not_written(
    redis_server: RedisServer, redis: Redis, spool: Spool, metrics: Metrics
) -> None:
    with redis_server.client() as admin:
        admin.config_set("maxmemory", 1)  # every write now fails with OOM: EXECABORT
        link, writer, replayer = parts(redis, spool, metrics)
        for i in range(20):
            writer.submit(record(i))
        await run_until_empty(writer)
        assert not link.up
        admin.config_set("maxmemory", 0)
    chunk = spool.read_chunk(100)
    assert chunk is not None and chunk.windows == []  # known not applied: no check needed
    assert await link.probe()
    while await replayer.replay_once():
        pass
    assert sorted(await request_ids(redis)) == sorted(f"req-{i}" for i in range(20))


async def test_a_record_redis_refuses_alone_is_dropped_and_counted(
    redis: Redis, spool: Spool, metrics: Metrics
) -> None:
    await redis.set(keys.pairs("broken"), b"not a stream")
    link, writer, _replayer = parts(redis, spool, metrics)
    writer.submit(record(0, "broken"))
    writer.submit(record(1))
    await run_until_empty(writer)
    assert await request_ids(redis) == ["req-1"]
    assert sample(metrics, "shadowgate_predlog_records_dropped_total", reason="rejected") == 1
    assert link.up


async def test_replay_after_a_crash_mid_replay_skips_what_landed(
    redis: Redis, spool: Spool, metrics: Metrics
) -> None:
    frames = [redisconn.Frame("iris", f"req-{i}", encode(record(i))) for i in range(20)]
    spool.append([f.payload for f in frames])
    chunk = spool.read_chunk(100)
    assert chunk is not None
    now_ms = int(time.time() * 1000)
    spool.begin_attempt(chunk, (now_ms - 5000, now_ms + 5000))  # then the send, then a crash
    await redisconn.write_batch(redis, frames[:20], lambda _: Retention(), now_ms)

    _link, _writer, replayer = parts(redis, spool, metrics)
    while await replayer.replay_once():
        pass
    assert sorted(await request_ids(redis)) == sorted(f"req-{i}" for i in range(20))
    assert sample(metrics, "shadowgate_predlog_records_replayed_total") == 0


@pytest.mark.parametrize(("records", "took", "live", "expected"), [
    (500, 0.0, 0.0, 0.1),        # idle gateway: the whole 5,000/s
    (500, 0.02, 0.0, 0.08),      # the step's own time counts
    (500, 0.0, 3_000.0, 0.25),   # busy: what live traffic leaves (2,000/s)
    (500, 0.0, 9_000.0, 1.0),    # busier than the cap: a tenth of it (500/s)
    (500, 2.0, 0.0, 0.0),        # a slow step: no pause, never negative
])
def test_replay_pause_leaves_room_for_live_traffic(records: int, took: float, live: float,
                                                   expected: float) -> None:
    assert replay_pause(records, took, live, 5_000.0) == pytest.approx(expected)


def pending_timers() -> int:
    """Timers scheduled on this (asyncio default) loop: an idle loop part should hold none."""
    loop = asyncio.get_running_loop()
    return sum(1 for handle in loop._scheduled if not handle.cancelled())  # type: ignore[attr-defined]


async def test_an_idle_writer_and_replayer_sleep_without_timers(
        redis: Redis, spool: Spool, metrics: Metrics) -> None:
    link, writer, replayer = parts(redis, spool, metrics)
    tasks = [asyncio.create_task(writer.run()), asyncio.create_task(replayer.run())]
    try:
        await apoll(lambda: pending_timers() == 0, DEADLINE)  # after the first probe
        writer.submit(record(1))  # a record wakes the writer, which writes it
        await apoll(lambda: sample(metrics, "shadowgate_predlog_records_written_total") == 1,
                    DEADLINE)
        await apoll(lambda: pending_timers() == 0, DEADLINE)
        # A failed write wakes the replayer, whose probe finds Redis back; then it sleeps.
        link.mark_down(ConnectionError("test"))
        await apoll(lambda: link.up and pending_timers() == 0, DEADLINE)
    finally:
        writer.stop()
        replayer.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)
    assert await request_ids(redis) == ["req-1"]
