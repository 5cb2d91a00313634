"""shadowgate demo: a real gateway, real traffic, real labels, and the report, in a minute.

Starts the gateway on the bundled models and config on a free port of 127.0.0.1 (its own
embedded Redis under a fresh state directory), sends the bundled held-out rows several times
as different users, posts their true labels as feedback, reads the paired records back and
writes the comparison report. Everything it started is stopped before it returns.
"""

from __future__ import annotations

import asyncio
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
    """Send every held-out row ``passes`` times; returns (request id, true label) pairs."""
    rows = [orjson.loads(line) for line in SAMPLE.read_bytes().splitlines() if line.strip()]
    sent: list[tuple[str, str]] = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for n in range(passes):
            for i, row in enumerate(rows):
                r = client.post(f"/predict/{deployment}", json={"instances": [row["features"]]},
                                headers={"x-user-id": f"user-{n}-{i}"})
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
        report = await report_from_redis(loaded, deployment, redis, since=None, until=None)
    finally:
        await redis.aclose()
    return render(report, fmt), [f"{v.verdict.replace('_', ' ')}: {v.headline}"
                                 for v in report.verdicts]


def run_demo(config: Path, out: Path, fmt: Format = "html", passes: int = 5,
             say: bool = True) -> list[str]:
    """The whole demo; returns the verdict lines (the report is written to ``out``)."""
    loaded = load(config)
    deployment = loaded.config.deployments[0].name
    with tempfile.TemporaryDirectory(prefix="shadowgate-demo-") as state:
        settings = Settings(config=config, port=_free_port(), state_dir=Path(state) / "s",
                            watch_config=False, rollout_controller=False)
        if say:
            print(f"gateway on 127.0.0.1:{settings.port} ({config}), deployment "
                  f"{deployment}", file=sys.stderr)
        with running(settings) as (url, redis_url):
            sent = traffic(url, deployment, passes, say)
            if say:
                print(f"  posted {len(sent)} labels; building the report", file=sys.stderr)
            text, verdicts = asyncio.run(_report(loaded, deployment, redis_url, len(sent), fmt))
    out.write_text(text, encoding="utf-8")
    return verdicts
