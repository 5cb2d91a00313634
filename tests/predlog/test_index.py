"""The id index beside each stream: which request ids (and body ids) have a record."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from gateway.metrics import Metrics
from gateway.predlog import keys, redisconn
from gateway.predlog.record import PairedRecord, encode
from gateway.predlog.redisconn import Frame, Retention
from gateway.predlog.spool import Spool
from tests.predlog.test_writer import parts, record, run_until_empty
from tests.redis_fixture import RedisServer

T0 = 1_800_000_000.0


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = redisconn.client(redis_server.url)
    yield client
    await client.aclose()


def with_id(i: int, body_id: str | None, ts: float = T0) -> PairedRecord:
    rec = record(i)
    rec["id"] = body_id
    rec["ts"] = ts + i
    return rec


def frame(rec: PairedRecord) -> Frame:
    return Frame(rec["deployment"], rec["request_id"], encode(rec), int(rec["ts"] * 1000),
                 rec.get("id"))


async def index(redis: Redis) -> dict[str, float]:
    return {k.decode(): v for k, v in await redis.zrange(keys.ids("iris"), 0, -1,
                                                         withscores=True)}


async def test_request_ids_and_body_ids_are_indexed_by_record_ts(redis: Redis) -> None:
    recs = [with_id(0, "order-17"), with_id(1, None), with_id(2, "")]
    await redisconn.write_batch(redis, [frame(r) for r in recs], lambda _: Retention(),
                                int(time.time() * 1000))
    assert await index(redis) == {"req-0": T0 * 1000, "order-17": T0 * 1000,
                                  "req-1": (T0 + 1) * 1000, "req-2": (T0 + 2) * 1000}


async def test_any_body_id_survives_the_trip(redis: Redis) -> None:
    odd = ["12:34:5", "line\nbreak\ttab", "caf\u00e9 \u2603 \U0001f600", ":", "0:", "x" * 300]
    recs = [with_id(i, body_id) for i, body_id in enumerate(odd)]
    await redisconn.write_batch(redis, [frame(r) for r in recs], lambda _: Retention(),
                                int(time.time() * 1000))
    kept = await index(redis)
    assert {body_id: kept[body_id] for body_id in odd} == {
        body_id: (T0 + i) * 1000 for i, body_id in enumerate(odd)}
    assert len(kept) == 2 * len(odd)


async def test_the_index_is_trimmed_like_the_stream(redis: Redis) -> None:
    recs = [with_id(i, f"b{i}") for i in range(30)]
    await redisconn.write_batch(redis, [frame(r) for r in recs],
                                lambda _: Retention(max_len=5), int(time.time() * 1000))
    kept = await index(redis)
    assert len(kept) == 10  # two ids per record, max_len records
    assert set(kept) == {f"req-{i}" for i in range(25, 30)} | {f"b{i}" for i in range(25, 30)}
    by_age = Retention(max_len=None, max_age_s=10)
    now_ms = int((T0 + 40) * 1000)  # records 0..29 are 11 to 40 s old
    await redisconn.write_batch(redis, [frame(with_id(30, None))], lambda _: by_age, now_ms)
    assert set(await index(redis)) == {"req-30"}


async def test_a_broken_index_never_fails_the_batch(redis: Redis) -> None:
    await redis.set(keys.ids("iris"), b"not a sorted set")
    rejected = await redisconn.write_batch(redis, [frame(with_id(0, "x"))],
                                           lambda _: Retention(), int(time.time() * 1000))
    assert rejected == []
    assert await redis.xlen(keys.pairs("iris")) == 1


async def test_the_writer_and_the_replayer_index_what_they_write(
        redis: Redis, tmp_path: Path) -> None:
    metrics = Metrics()
    spool = Spool(tmp_path / "spool", 1 << 20, metrics=metrics)
    try:
        _link, writer, replayer = parts(redis, spool, metrics)
        writer.submit(with_id(0, "live-body-id"))
        await run_until_empty(writer)
        spool.append([encode(with_id(1, "spooled-body-id"))])
        while await replayer.replay_once():
            pass
    finally:
        spool.close()
    assert set(await index(redis)) == {"req-0", "live-body-id", "req-1", "spooled-body-id"}
