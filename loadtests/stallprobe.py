"""Find the gateway's event-loop stalls under open-loop load, and say what kind they are.

    python loadtests/stallprobe.py [--config full.yaml] [--rate 5000] [--duration 20]
                                   [--threshold-ms 6] [--env NAME=VALUE ...]

Starts one gateway (``shadowgate serve``'s uvicorn settings, one worker, embedded Redis)
with a probe in its event loop, offers ``--rate`` requests/s open loop (paced.py), and
reports every stall: a 1 ms ticker on the loop that runs more than ``--threshold-ms`` late.
For each stall the probe reads, from ``/proc/thread-self/schedstat``, how the loop's thread
spent the stalled time:

- **on CPU**: the loop ran something long (a big batch, a GC pass: GC passes are timed with
  ``gc.callbacks`` and listed when one overlaps the stall);
- **runnable, waiting for a core**: the scheduler ran other processes (the load generator,
  Redis, an AOF rewrite child, other users of the machine);
- **blocked**: neither, so the thread slept: on the GIL (another thread of the process held
  it; the threads that ran meanwhile are listed with their CPU time) or in a blocking call.

The Redis server's INFO (an AOF rewrite in progress) is polled every 100 ms by the
driver, so stalls during rewrites are told apart. Output: a summary table per kind, and
``loadtests/results/stalls-<timestamp>.json`` with every stall.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import setups

NS = 1_000_000_000
TICK_S = 0.001


def _schedstat(path: str) -> tuple[int, int]:
    """(ns on CPU, ns runnable but waiting for a CPU) of a thread."""
    with open(path) as f:
        run, wait, _ = f.read().split()
    return int(run), int(wait)


def _threads() -> dict[str, tuple[str, int]]:
    """tid -> (thread name, ns on CPU) of every thread of this process."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            name = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
            out[tid] = (name, _schedstat(f"/proc/self/task/{tid}/schedstat")[0])
        except OSError:
            continue
    return out


class Probe:
    """Runs in the gateway's loop: a ticker that measures its own lateness."""

    def __init__(self, threshold_s: float, report: Path) -> None:
        self.threshold_s = threshold_s
        self.report = report
        self.stalls: list[dict[str, Any]] = []
        self.gcs: list[tuple[float, float, int]] = []  # (start, duration, generation)
        self._gc_start = 0.0
        self.ticks = 0
        self.requests = 0  # HTTP requests that reached the app (ProbedApp counts them)
        self.self_path = "/proc/thread-self/schedstat"

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._gc_start = now
        else:
            self.gcs.append((self._gc_start, now - self._gc_start, int(info["generation"])))

    async def run(self) -> None:
        gc.callbacks.append(self._on_gc)
        main_tid = str(threading.get_native_id())
        last = time.perf_counter()
        seen = self.requests
        run0, wait0 = _schedstat(self.self_path)
        threads = _threads()
        try:
            while True:
                await asyncio.sleep(TICK_S)
                now = time.perf_counter()
                self.ticks += 1
                run1, wait1 = _schedstat(self.self_path)
                late = now - last - TICK_S
                if late > self.threshold_s:
                    after = _threads()
                    others = {
                        f"{name}/{tid}": round((ns - threads.get(tid, (name, ns))[1]) / 1e6, 3)
                        for tid, (name, ns) in after.items() if tid != main_tid}
                    elapsed = (now - last) * NS
                    on_cpu, runnable = run1 - run0, wait1 - wait0
                    self.stalls.append({
                        "at": last, "ms": round(late * 1000, 2),
                        "on_cpu_ms": round(on_cpu / 1e6, 2),
                        "runnable_ms": round(runnable / 1e6, 2),
                        "blocked_ms": round(max(0.0, elapsed - on_cpu - runnable) / 1e6, 2),
                        "requests": self.requests - seen,
                        "gc": [(round(d * 1000, 2), g) for s, d, g in self.gcs[-20:]
                               if s + d >= last and s <= now],
                        "other_threads_cpu_ms": {k: v for k, v in others.items() if v > 0},
                    })
                    threads = after
                elif self.ticks % 200 == 0:
                    threads = _threads()
                run0, wait0, last, seen = run1, wait1, now, self.requests
        finally:
            gc.callbacks.remove(self._on_gc)
            long_gcs = [(round(d * 1000, 2), g) for _, d, g in self.gcs if d > 0.002]
            self.report.write_text(json.dumps({
                "ticks": self.ticks, "stalls": self.stalls, "gc_count": len(self.gcs),
                "gc_over_2ms": long_gcs,
                "gc_total_ms": round(sum(d for _, d, _ in self.gcs) * 1000, 2)}))


class ProbedApp:
    """The gateway's ASGI app, with the probe started and stopped by the lifespan."""

    def __init__(self, app: Any, probe: Probe) -> None:
        self.app = app
        self.probe = probe
        self.task: asyncio.Task[None] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            if scope["type"] == "http":
                self.probe.requests += 1
            await self.app(scope, receive, send)
            return

        async def wrapped_send(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                self.task = asyncio.create_task(self.probe.run())
            if message["type"].startswith("lifespan.shutdown") and self.task is not None:
                self.task.cancel()
                await asyncio.gather(self.task, return_exceptions=True)
            await send(message)

        await self.app(scope, receive, wrapped_send)


def serve(port: int, report: Path, threshold_s: float) -> None:
    """The child: ``shadowgate serve`` with one worker, plus the probe."""
    import uvicorn

    from gateway.app import create_app
    from gateway.settings import Settings
    from gateway.web.limits import Limits, protocol_for

    settings = Settings.from_env()
    app = ProbedApp(create_app(settings, tune_gc=True, handle_signals=True),
                    Probe(threshold_s, report))
    uvicorn.Server(uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
        proxy_headers=False, server_header=False, http=protocol_for(Limits.from_settings(
            settings)), timeout_keep_alive=int(settings.keep_alive_s))).run()


def drive(args: argparse.Namespace) -> int:
    """The parent: start the probed gateway, load it, poll Redis, summarise."""
    import paced
    import redis
    import servers
    import workloads
    from loadgen import LoadSpec

    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = Path(tempfile.mkdtemp(prefix="sg-stalls-"))
    report = work / "probe.json"
    env = {"SHADOWGATE_CONFIG": str(setups.CONFIGS / args.config),
           **dict(item.split("=", 1) for item in args.env)}
    argv = (sys.executable, __file__, "--serve", "--port", "{port}", "--report", str(report),
            "--threshold-ms", str(args.threshold_ms))
    spec = servers.ServerSpec("probed", argv, setups.GATEWAY_HEALTH,
                              state_env=setups.STATE_ENV, env=env)
    server = servers.start(spec, setups.REPO_ROOT, work)
    rewrites: list[tuple[float, float]] = []
    try:
        servers.wait_ready(server, 60)
        assert server.state_dir is not None
        client = redis.Redis(unix_socket_path=str(server.state_dir / "redis" / "redis.sock"))
        done = threading.Event()
        t0 = time.perf_counter()

        def poll() -> None:
            started = None
            while not done.is_set():
                busy = client.info("persistence")["aof_rewrite_in_progress"]
                now = time.perf_counter() - t0
                if busy and started is None:
                    started = now
                elif not busy and started is not None:
                    rewrites.append((started, now))
                    started = None
                time.sleep(0.1)
            if started is not None:
                rewrites.append((started, time.perf_counter() - t0))

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        rows = workloads.load_rows()
        workload = workloads.build("/v2/models/breast-cancer/infer", "v2", rows, True, ())
        load = paced.run(LoadSpec(servers.HOST, server.port, workload, 64, args.duration,
                                  1.0, rate=float(args.rate)))
        done.set()
        poller.join()
        cpu = servers.cpu_seconds(server.pid)
        client.close()
    finally:
        if server.alive():
            server.process.send_signal(signal.SIGTERM)
        servers.stop(server)
    data = json.loads(report.read_text()) if report.exists() else {"stalls": []}
    stalls = data["stalls"]
    summary = summarise(stalls, args.duration + 1.0)
    print(f"offered {args.rate}/s for {args.duration:g}s: {load.requests} requests, "
          f"p50 {load.p50_ms:.2f} ms, p99 {load.p99_ms:.2f} ms; server+children CPU "
          f"{cpu:.1f}s; load average {os.getloadavg()[0]:.2f}")
    print(f"AOF rewrites seen: {len(rewrites)}; GC passes {data.get('gc_count')}, "
          f"total {data.get('gc_total_ms')} ms, over 2 ms: {data.get('gc_over_2ms')}")
    print(summary)
    out = setups.LOADTESTS / "results" / f"stalls-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "requests": load.requests,
                               "p50_ms": load.p50_ms, "p99_ms": load.p99_ms,
                               "rewrites": rewrites, **data}, indent=1))
    print(f"details: {out}")
    return 0


def kind(stall: dict[str, Any]) -> str:
    """The largest share of the stalled time."""
    parts = {"on CPU": stall["on_cpu_ms"], "runnable (no core)": stall["runnable_ms"],
             "blocked (GIL or a call)": stall["blocked_ms"]}
    return max(parts, key=lambda k: parts[k])


def summarise(stalls: list[dict[str, Any]], seconds: float) -> str:
    lines = [f"{len(stalls)} stalls over the threshold ({len(stalls) / seconds:.2f}/s), "
             f"longest {max((s['ms'] for s in stalls), default=0):.1f} ms"]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for stall in stalls:
        by_kind.setdefault(kind(stall), []).append(stall)
    for name, group in sorted(by_kind.items(), key=lambda kv: -len(kv[1])):
        ms = sorted(s["ms"] for s in group)
        with_gc = sum(1 for s in group if s["gc"])
        threads: dict[str, float] = {}
        for s in group:
            for thread, cpu in s["other_threads_cpu_ms"].items():
                base = thread.split("/")[0]
                threads[base] = threads.get(base, 0.0) + cpu
        top = ", ".join(f"{t} {v:.1f} ms" for t, v in sorted(threads.items(),
                                                               key=lambda kv: -kv[1])[:4])
        cpu = sum(s["on_cpu_ms"] for s in group)
        served = sum(s.get("requests", 0) for s in group)
        per = f"{1000 * cpu / served:.0f} us of CPU each" if served else "-"
        lines.append(f"  {name:<24} {len(group):4d}  median {ms[len(ms) // 2]:6.1f} ms  "
                     f"max {ms[-1]:6.1f} ms  with a GC pass {with_gc}  other threads: {top}")
        lines.append(f"  {'':<24} requests that arrived in these stalls: {served} "
                     f"({served / len(group):.1f} a stall; {per})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="full.yaml", help="a file in loadtests/configs")
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--threshold-ms", type=float, default=6.0)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        assert args.report is not None
        serve(args.port, args.report, args.threshold_ms / 1000)
        return 0
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
