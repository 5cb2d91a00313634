"""Per-request cost of the gateway's own code, without HTTP: ASGI called in-process.

    python loadtests/inproc.py [--requests 20000] [--setups floor,v2,predict,full-v2]
                               [--profile SETUP]

Drives each app's ASGI callable directly with pre-built scopes (no sockets, no uvicorn), so
what is left is the handler: JSON, validation, routing, model call, record, metrics. The
floor is ``floor.py``'s starlette app. Background tasks (shadow workers, the log writer to
a real embedded Redis) run on the same loop: every client coroutine yields once per
request, as a socket read would. ``--profile`` prints a cProfile of one setup.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import floor
import servers
import setups
import uvloop
import workloads

from gateway.app import create_app
from gateway.settings import Settings

Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


@contextlib.asynccontextmanager
async def running(app: Any) -> AsyncIterator[None]:
    """Run the app's lifespan around the block."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started, stopped = asyncio.Event(), asyncio.Event()

    async def receive() -> dict[str, Any]:
        return await queue.get()

    async def send(message: dict[str, Any]) -> None:
        if message["type"].startswith("lifespan.startup"):
            if message["type"].endswith("failed"):
                raise RuntimeError(message.get("message"))
            started.set()
        elif message["type"].startswith("lifespan.shutdown"):
            stopped.set()

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"},
                                    "state": {}}, receive, send))
    await queue.put({"type": "lifespan.startup"})
    await asyncio.wait_for(started.wait(), 120)
    try:
        yield
    finally:
        await queue.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(stopped.wait(), 60)
        await task


def scope_for(path: str, body: bytes, user: int | None,
              extra: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()),
               *((k.lower().encode(), v.encode()) for k, v in extra)]
    if user is not None:
        headers.append((b"x-user-id", f"user-{user}".encode()))
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}


async def drive(app: Asgi, path: str, bodies: list[bytes], vary: bool, total: int,
                clients: int, extra: tuple[tuple[str, str], ...] = (), rate: float = 0.0
                ) -> float:
    """Seconds for ``total`` requests from ``clients`` concurrent coroutines; with ``rate``,
    one request every ``1 / rate`` s from one coroutine (the loop sleeps in between)."""
    statuses: dict[int, int] = {}
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def client(offset: int, count: int) -> None:
        for i in range(count):
            if rate:
                await asyncio.sleep(max(0.0, started + (offset + i) / rate - loop.time()))
            n = offset + i
            body = bodies[n % len(bodies)]
            scope = scope_for(path, body, n % 5000 if vary else None, extra)
            message = {"type": "http.request", "body": body, "more_body": False}

            async def receive(message: dict[str, Any] = message) -> dict[str, Any]:
                return message

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    statuses[message["status"]] = statuses.get(message["status"], 0) + 1

            scope["state"] = {}
            await app(scope, receive, send)
            await asyncio.sleep(0)

    if rate:
        clients = 1
    per = total // clients
    start = time.perf_counter()
    await asyncio.gather(*(client(c * per, per) for c in range(clients)))
    elapsed = time.perf_counter() - start
    if set(statuses) != {200}:
        raise SystemExit(f"{path}: unexpected statuses {statuses}")
    return elapsed


def bodies_for(kind: workloads.BodyKind, rows: int) -> list[bytes]:
    encode = workloads.v2_body if kind == "v2" else workloads.predict_body
    return [encode(row) for row in workloads.load_rows(rows=rows)]


async def measure(name: str, total: int, clients: int, profile: bool, state: Path,
                  log: str, rate: float = 0.0) -> float:
    """Microseconds per request: wall time at saturation; with ``rate``, the CPU time of
    this process and its children (the embedded Redis) per request."""
    setup = setups.find(name)
    bodies = bodies_for(setup.body, 64)
    if setup.server.startswith("floor"):
        app: Any = floor.create_app()
        context: Any = contextlib.nullcontext()
    else:
        config = "champion.yaml" if setup.server.startswith("gateway-champion") else "full.yaml"
        token = setups.BENCH_TOKEN if setup.server.endswith("-token") else None
        settings = Settings(config=setups.CONFIGS / config, state_dir=state / name,
                            log=log, inference_token=token)
        app = create_app(settings)
        context = running(app)
    async with context:
        await drive(app, setup.path, bodies, setup.vary_users, 2000, clients,
                    setup.headers)  # warm-up
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        cpu = servers.cpu_seconds(os.getpid())
        elapsed = await drive(app, setup.path, bodies, setup.vary_users, total, clients,
                              setup.headers, rate)
        cpu = servers.cpu_seconds(os.getpid()) - cpu
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    return (cpu if rate else elapsed) / total * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--setups", default="floor,v2,predict,full-v2,full-predict")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--log", choices=("redis", "memory", "off"), default="redis",
                        help="where the gateway's paired records go")
    parser.add_argument("--profile", default=None, help="cProfile this setup instead")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="paced: one request every 1/RATE s; report CPU (this process "
                             "and the embedded Redis) per request instead of wall time")
    args = parser.parse_args(argv)
    names = [args.profile] if args.profile else args.setups.split(",")
    results: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="sg-inproc-") as tmp:
        for r in range(1 if args.profile else args.rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    us = runner.run(measure(name, args.requests, args.clients,
                                            bool(args.profile), Path(tmp) / str(r), args.log,
                                            args.rate))
                results[name].append(us)
    base = min(results["floor"]) if results.get("floor") else None
    what = "CPU us/request (best)" if args.rate else "us/request (best)"
    print(f"{'setup':<14}{what:>22}{'x floor':>10}")
    for name, values in results.items():
        best = min(values)
        ratio = f"{best / base:.2f}" if base else "-"
        print(f"{name:<14}{best:>22.1f}{ratio:>10}")


if __name__ == "__main__":
    os.environ.setdefault("SHADOWGATE_LOG_LEVEL", "warning")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
