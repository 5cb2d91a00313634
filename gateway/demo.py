"""shadowgate demo: a real gateway, real traffic, real labels, and the report, in a minute.

Starts the gateway on the bundled models and config on a free port of 127.0.0.1 (its own
embedded Redis under a fresh state directory), sends the bundled held-out rows several times
as different users, posts their true labels as feedback, reads the paired records back and
writes the comparison report. Everything it started is stopped before it returns.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import uvicorn
from redis.asyncio import Redis

from gateway.analysis.run import report_from_redis
from gateway.app import create_app
from gateway.config.load import LoadedConfig, load
from gateway.predlog import keys
from gateway.reports import Format, render
from gateway.rollout import store
from gateway.settings import Settings

SAMPLE = Path(__file__).resolve().parents[1] / "models" / "samples" / "breast-cancer-holdout.jsonl"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(settings: Settings) -> Iterator[tuple[str, str]]:
    """The gateway in a thread of this process; yields (base URL, Redis URL)."""
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True, name="demo-gateway")
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the demo gateway did not start (see the log above)")
        time.sleep(0.05)  # polling under the deadline above
    try:
        runtime = app.state.runtime
        redis_url = f"unix://{settings.state_dir.resolve() / 'redis' / 'redis.sock'}"
        if runtime.settings.redis_url is not None:
            redis_url = runtime.settings.redis_url
        yield f"http://127.0.0.1:{settings.port}", redis_url
    finally:
        server.should_exit = True
        thread.join(60)


def traffic(url: str, deployment: str, passes: int, say: bool) -> list[tuple[str, str]]:
    """Send every held-out row ``passes`` times, each request from a new user; returns
    (request id, true label) pairs."""
    rows = [orjson.loads(line) for line in SAMPLE.read_bytes().splitlines() if line.strip()]
    sent: list[tuple[str, str]] = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(passes):
            for row in rows:
                r = client.post(f"/predict/{deployment}", json={"instances": [row["features"]]},
                                headers={"x-user-id": secrets.token_hex(8)})
                r.raise_for_status()
                sent.append((r.headers["x-request-id"], row["label_name"]))
            if say:
                print(f"  sent {len(sent)} requests", file=sys.stderr)
        r = client.post("/feedback", json={"deployment": deployment, "items": [
            {"request_id": rid, "label": label} for rid, label in sent]})
        r.raise_for_status()
    return sent


async def _report(loaded: LoadedConfig, deployment: str, redis_url: str, expected: int,
                  fmt: Format) -> tuple[str, list[str]]:
    redis = Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 30
        while await redis.xlen(keys.pairs(deployment)) < expected:
            if time.monotonic() > deadline:
                raise RuntimeError("the paired records did not reach Redis in time")
            await asyncio.sleep(0.05)  # polling under the deadline above
        report = await report_from_redis(loaded, deployment, redis_url, since=None,
                                         until=None)
    finally:
        await redis.aclose()
    return render(report, fmt), [f"{v.verdict.replace('_', ' ')}: {v.headline}"
                                 for v in report.verdicts]


async def _decisions(redis_url: str, deployment: str, seen: int) -> list[dict[str, object]]:
    redis = Redis.from_url(redis_url)
    try:
        return (await store.history(redis, deployment, 1000))[seen:]
    finally:
        await redis.aclose()


def watch_rollout(url: str, redis_url: str, deployment: str, timeout_s: float
                  ) -> tuple[str, int]:
    """Traffic and labels, pass after pass, printing each decision as it is recorded, until
    the rollout is promoted or rolled back or ``timeout_s``; returns how it ended and how
    many requests were sent."""
    seen, sent, deadline = 0, 0, time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sent += len(traffic(url, deployment, 1, say=False))
        for entry in asyncio.run(_decisions(redis_url, deployment, seen)):
            seen += 1
            print(f"  [{entry.get('stage_name') or 'start'}] {entry['action']}: "
                  f"{entry['summary']}", file=sys.stderr)
            if entry.get("status") in ("promoted", "rolled_back"):
                return str(entry["status"]), sent
    return "still running (timeout)", sent


def run_demo(config: Path, out: Path, fmt: Format = "html", passes: int = 5,
             say: bool = True, timeout_s: float = 300.0) -> list[str]:
    """The whole demo; returns the verdict lines (the report is written to ``out``). With a
    rollout in the config, traffic flows until the rollout ends, its decisions printed."""
    loaded = load(config)
    deployment = loaded.config.deployments[0].name
    rollout = loaded.config.deployments[0].rollout is not None
    with tempfile.TemporaryDirectory(prefix="shadowgate-demo-") as state:
        settings = Settings(config=config, port=_free_port(), state_dir=Path(state) / "s",
                            watch_config=False, rollout_controller=rollout)
        if say:
            print(f"gateway on 127.0.0.1:{settings.port} ({config}), deployment "
                  f"{deployment}", file=sys.stderr)
        with running(settings) as (url, redis_url):
            before = 0
            if rollout:
                if say:
                    print("  rollout decisions as they happen:", file=sys.stderr)
                ended, before = watch_rollout(url, redis_url, deployment, timeout_s)
                if say:
                    print(f"  the rollout is {ended.replace('_', ' ')}", file=sys.stderr)
            sent = traffic(url, deployment, passes, say)
            if say:
                print(f"  posted {len(sent)} labels; building the report", file=sys.stderr)
            text, verdicts = asyncio.run(_report(loaded, deployment, redis_url,
                                                 before + len(sent), fmt))
    out.write_text(text, encoding="utf-8")
    return verdicts
