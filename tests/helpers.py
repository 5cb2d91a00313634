"""Test harnesses: the app in-process (TestClient), in a real uvicorn thread, or as a process."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import uvicorn
import yaml
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.config.load import LoadedConfig, validate
from gateway.metrics import Metrics
from gateway.predlog.sink import MemorySink
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
HOLDOUT = MODELS / "samples" / "breast-cancer-holdout.jsonl"
MODEL_NAMES = ("bc-logreg", "bc-gbt", "bc-rf")


@functools.cache
def onnx_session(name: str) -> ort.InferenceSession:
    return ort.InferenceSession(str(MODELS / name / "1" / "model.onnx"),
                                providers=["CPUExecutionProvider"])


def onnx_direct(name: str, rows: Any) -> dict[str, np.ndarray[Any, Any]]:
    """A bundled model's answer from onnxruntime called directly: the reference."""
    label, proba = onnx_session(name).run(["label", "probabilities"],
                                          {"input": np.asarray(rows, dtype=np.float32)})
    return {"label": label, "probabilities": proba}


def config(deployments: list[dict[str, Any]] | None = None, *, models: list[dict[str, Any]]
           | None = None, **extra: Any) -> dict[str, Any]:
    """A config dict on the bundled models; ``deployments`` defaults to champion-only."""
    data: dict[str, Any] = {
        "model_repository": str(MODELS),
        "models": models if models is not None else [{"name": n, "version": "1"}
                                                     for n in MODEL_NAMES],
        "deployments": deployments if deployments is not None
        else [{"name": "breast-cancer", "champion": "bc-logreg"}],
    }
    data.update(extra)
    return data


def loaded(data: dict[str, Any]) -> LoadedConfig:
    return validate(data, None, yaml.safe_dump(data).encode())


POLL_EVERY_S = 0.005


def poll(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Wait for ``condition`` with a deadline (checks every few ms; never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL_EVERY_S)


async def apoll(condition: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0,
                what: str = "condition", every: float = POLL_EVERY_S) -> None:
    """``poll`` for async tests: yields to the loop's other tasks between checks;
    ``condition`` may be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)


class _Observed:
    """What both harnesses tell: a metric's value, and the records so far."""

    sink: MemorySink
    metrics: Metrics

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def wait_records(self, count: int, timeout: float = 10.0) -> None:
        poll(lambda: len(self.sink.records) >= count, timeout, f"{count} records")


@dataclass
class Harness(_Observed):
    app: Starlette
    client: TestClient
    sink: MemorySink
    metrics: Metrics


@contextlib.contextmanager
def harness(data: dict[str, Any], **settings: Any) -> Iterator[Harness]:
    """The app with its lifespan running, an in-memory record sink and a fresh registry."""
    metrics = Metrics(CollectorRegistry())
    sink = MemorySink()
    app = create_app(Settings(log="memory", **settings), loaded=loaded(data), metrics=metrics,
                     sink=sink)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Harness(app, client, sink, metrics)


@contextlib.contextmanager
def redis_harness(data: dict[str, Any], redis_url: str, state_dir: Path,
                  **settings: Any) -> Iterator[Harness]:
    """As ``harness``, with the prediction log (and feedback) in a real Redis."""
    metrics = Metrics(CollectorRegistry())
    app = create_app(Settings(log="redis", redis_url=redis_url, state_dir=state_dir,
                              **settings), loaded=loaded(data), metrics=metrics)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Harness(app, client, MemorySink(), metrics)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """A real uvicorn server in a thread of this process, on a free port."""

    def __init__(self, app: Any, **options: Any) -> None:
        """``options``: more uvicorn.Config arguments (e.g. ``http=`` a protocol class)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
            **options))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        poll(lambda: self.server.started or not self.thread.is_alive(), 30, "uvicorn start")
        if not self.server.started:
            raise RuntimeError("uvicorn failed to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@dataclass
class LiveGateway(_Observed):
    """A gateway in a real uvicorn thread with V2 gRPC on its own port (same process and
    event loop), an in-memory record sink and a fresh registry."""

    server: LiveServer
    grpc: str  # host:port of the gRPC server
    sink: MemorySink
    metrics: Metrics

    @property
    def http(self) -> str:
        """host:port, as tritonclient takes it."""
        return f"127.0.0.1:{self.server.port}"


@contextlib.contextmanager
def live_gateway(data: dict[str, Any], **settings: Any) -> Iterator[LiveGateway]:
    grpc_port = free_port()
    metrics = Metrics(CollectorRegistry())
    sink = MemorySink()
    app = create_app(Settings(log="memory", grpc_port=grpc_port, **settings),
                     loaded=loaded(data), metrics=metrics, sink=sink, serve_grpc=True)
    with LiveServer(app) as server:
        yield LiveGateway(server, f"127.0.0.1:{grpc_port}", sink, metrics)


class GatewayProcess:
    """``python -m gateway serve`` as a separate process; stopped by PID. No gRPC unless
    ``env`` sets ``SHADOWGATE_GRPC_PORT`` (tests run in parallel: no fixed port)."""

    def __init__(self, config_path: Path, env: dict[str, str] | None = None,
                 args: list[str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "SHADOWGATE_GRPC_PORT": "off", **(env or {})}
        self.args = [sys.executable, "-m", "gateway", "serve", "--config", str(config_path),
                     "--host", "127.0.0.1", "--port", str(self.port), *(args or [])]
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> GatewayProcess:
        self.proc = subprocess.Popen(self.args, env=self.env, cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return True
            try:
                return httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        poll(ready, 60, "gateway process ready")
        if self.proc.poll() is not None:
            out = self.proc.stdout.read().decode() if self.proc.stdout else ""
            raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{out}")
        return self

    def stop(self) -> str:
        """SIGTERM, wait, return the output."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out.decode() if out else ""

    def __exit__(self, *exc: object) -> None:
        self.stop()


def v2_body(rows: list[list[float]], name: str = "input", **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": name, "shape": [len(rows), len(rows[0])], "datatype": "FP32",
                        "data": rows}], **extra}


async def raw_posts(port: int, path: str, body: bytes, headers: list[dict[str, str]],
                    connections: int = 8) -> list[tuple[int, dict[str, str], bytes]]:
    """POST ``body`` once per header dict over keep-alive sockets; much faster than httpx.

    Returns (status, lower-cased headers, body) in the order of ``headers``.
    """
    results: list[tuple[int, dict[str, str], bytes]] = [(0, {}, b"")] * len(headers)

    async def worker(indices: range) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in indices:
                extra = "".join(f"{k}: {v}\r\n" for k, v in headers[i].items())
                writer.write(f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: "
                             f"application/json\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
                             .encode() + body)
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                status = int(lines[0].split()[1])
                parsed = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        parsed[k.strip().lower()] = v.strip()
                content = await reader.readexactly(int(parsed.get("content-length", "0")))
                results[i] = (status, parsed, content)
        finally:
            writer.close()

    await asyncio.gather(*(worker(range(c, len(headers), connections))
                           for c in range(connections)))
    return results
