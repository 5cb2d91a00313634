"""The request path's tail while the embedded Redis rewrites its AOF: old settings against new.

    python loadtests/aof_bench.py [--rate 5000] [--duration 20] [--rounds 2] [--every 6]

Two full gateways (configs/full.yaml: 2 shadows, 10% canary, paired records to the embedded
Redis), side by side, rounds alternating: ``before`` runs the embedded Redis as the gateway
did (not niced; rewrite at 100% growth past 64 MB; fsync during rewrites), ``after`` with
today's defaults (gateway/predlog/embedded.py). During each cell the driver asks Redis for a
rewrite (BGREWRITEAOF) every ``--every`` seconds, so both see rewrites of the same data at
the same times (the new thresholds would rarely start one in a short run), and polls
``INFO persistence`` every 50 ms to know when one runs. Latencies (open loop, paced.py) are
cut into 0.5 s windows; the table compares the windows' p99 during rewrites and outside them.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import paced
import redis
import servers
import setups
import workloads
from loadgen import LoadSpec, percentile

WINDOW_NS = 500_000_000
BEFORE = {"SHADOWGATE_REDIS_NICE": "0", "SHADOWGATE_REDIS_ARGS":
          "--auto-aof-rewrite-percentage 100 --auto-aof-rewrite-min-size 64mb "
          "--no-appendfsync-on-rewrite no"}
PATH = "/v2/models/breast-cancer/infer"


@dataclass
class Tally:
    inside: list[float] = field(default_factory=list)  # window p99s during a rewrite
    outside: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)  # each cell's p99
    rewrites: list[float] = field(default_factory=list)  # durations
    spooled: float = 0.0  # records the gateway spooled (Redis slower than the write timeout)


def rewriter(client: redis.Redis, every: float, done: threading.Event,
             spans: list[tuple[int, int]]) -> None:
    """BGREWRITEAOF every ``every`` s; record (start, end) of each rewrite in ns."""
    started: int | None = None
    next_at = time.perf_counter() + 2.0
    while not done.wait(0.05):
        now = time.perf_counter()
        busy = int(client.info("persistence")["aof_rewrite_in_progress"])
        if busy and started is None:
            started = time.perf_counter_ns()
        elif not busy and started is not None:
            spans.append((started, time.perf_counter_ns()))
            started = None
        if not busy and now >= next_at:
            client.bgrewriteaof()
            next_at = now + every
    if started is not None:
        spans.append((started, time.perf_counter_ns()))


def cell(server: servers.Server, workload: workloads.Workload, args: argparse.Namespace,
         tally: Tally) -> None:
    assert server.state_dir is not None
    client = redis.Redis(unix_socket_path=str(server.state_dir / "redis" / "redis.sock"))
    done = threading.Event()
    spans: list[tuple[int, int]] = []
    thread = threading.Thread(target=rewriter, args=(client, args.every, done, spans))
    thread.start()
    try:
        result, times = paced.run_timed(LoadSpec(servers.HOST, server.port, workload, 64,
                                                 args.duration, 1.0, rate=args.rate))
    finally:
        done.set()
        thread.join()
        client.close()
    tally.p99.append(result.p99_ms)
    with urllib.request.urlopen(f"http://{servers.HOST}:{server.port}/metrics") as reply:
        text = reply.read().decode()
    tally.spooled = sum(float(v) for v in re.findall(
        r"^shadowgate_predlog_records_spooled_total ([0-9.e+]+)$", text, re.M))
    tally.rewrites += [(end - start) / 1e9 for start, end in spans]
    windows: dict[int, list[int]] = {}
    for at, latency in times:
        windows.setdefault(at // WINDOW_NS, []).append(latency)
    for key, latencies in windows.items():
        start, end = key * WINDOW_NS, (key + 1) * WINDOW_NS
        p99 = percentile(sorted(latencies), 99) / 1e6
        during = any(s < end and e > start for s, e in spans)
        (tally.inside if during else tally.outside).append(p99)


def prefill(server: servers.Server, records: int) -> None:
    """``records`` stream entries like the gateway's (another stream: the gateway's trimming
    and reports do not see them), in pipelines of 1,000."""
    assert server.state_dir is not None
    client = redis.Redis(unix_socket_path=str(server.state_dir / "redis" / "redis.sock"))
    payload = b"x" * 1200
    try:
        for start in range(0, records, 1000):
            pipe = client.pipeline(transaction=False)
            for _ in range(min(1000, records - start)):
                pipe.xadd("sg:{prefill}:pairs", {"r": payload})
            pipe.execute()
    finally:
        client.close()


def line(name: str, tally: Tally) -> str:
    def stats(values: list[float]) -> str:
        if not values:
            return f"{'-':>6} {'-':>6} {'-':>6}"
        return (f"{len(values):6d} {statistics.median(values):6.2f} "
                f"{max(values):6.2f}")

    rewrite = statistics.mean(tally.rewrites) if tally.rewrites else 0.0
    return (f"{name:>7} {statistics.median(tally.p99):8.2f}  {stats(tally.outside)}  "
            f"{stats(tally.inside)}  {len(tally.rewrites):8d} {rewrite:8.2f} "
            f"{tally.spooled:8.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--every", type=float, default=6.0)
    parser.add_argument("--prefill", type=int, default=300_000,
                        help="records of ~1.2 KB written to each Redis first, so that a "
                             "rewrite takes as long as it would after minutes of traffic")
    args = parser.parse_args(argv)
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    workload = workloads.build(PATH, "v2", workloads.load_rows(), True, ())
    tallies = {"before": Tally(), "after": Tally()}
    with tempfile.TemporaryDirectory(prefix="sg-aof-") as tmp:
        running: dict[str, servers.Server] = {}
        try:
            for name in tallies:
                argv_ = (sys.executable, "-m", "gateway", "serve", "--config",
                         str(setups.CONFIGS / "full.yaml"), "--host", "127.0.0.1", "--port",
                         "{port}")
                spec = servers.ServerSpec(f"gateway-{name}", argv_, setups.GATEWAY_HEALTH,
                                          state_env=setups.STATE_ENV,
                                          # two gateways at once: no fixed gRPC port
                                          env={**(BEFORE if name == "before" else {}),
                                               "SHADOWGATE_GRPC_PORT": "off"})
                running[name] = servers.start(spec, setups.REPO_ROOT, Path(tmp))
            for server in running.values():
                servers.wait_ready(server, 120)
                prefill(server, args.prefill)
            for round_ in range(args.rounds):
                order = list(tallies) if round_ % 2 == 0 else list(reversed(tallies))
                for name in order:
                    cell(running[name], workload, args, tallies[name])
                    print(f"round {round_} {name}: {line(name, tallies[name])}",
                          file=sys.stderr, flush=True)
        finally:
            for server in running.values():
                servers.stop(server)
    print(f"\n{args.rate:.0f} req/s open loop, {args.rounds} round(s) of {args.duration:g}s, "
          f"a rewrite asked for every {args.every:g}s; 0.5 s windows; load average at end: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'':>7} {'p99 ms':>8}  {'outside rewrites: n, median, max p99':>20}  "
          f"{'during rewrites: n, median, max p99':>20}  {'rewrites':>8} {'mean s':>8} "
          f"{'spooled':>8}")
    for name, tally in tallies.items():
        print(line(name, tally))
    return 0


if __name__ == "__main__":
    sys.exit(main())
