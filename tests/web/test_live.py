"""Behaviour that depends on a real uvicorn server: streamed bodies, keep-alive, concurrency."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry

from gateway.app import create_app
from gateway.metrics import Metrics
from gateway.predlog.sink import MemorySink
from gateway.settings import Settings
from tests.backends import Fake
from tests.helpers import LiveServer, config, loaded, poll, v2_body

LIMIT = 2048


class Gated(Fake):
    """Holds every request until the test sets ``release``."""

    async def infer(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        await asyncio.to_thread(self.release.wait, 30)
        return self._run(inputs)


def gated(name: str, version: str, options: dict[str, Any]) -> Gated:
    return Gated(name, version, options)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[LiveServer, Metrics]]:
    metrics = Metrics(CollectorRegistry())
    models = [{"name": "bc-logreg"}, {"name": "gate", "python": f"{__name__}:gated"}]
    app = create_app(Settings(log="memory", max_body_bytes=LIMIT), loaded=loaded(config(
        models=models)), metrics=metrics, sink=MemorySink())
    with LiveServer(app) as live:
        yield live, metrics


@pytest.fixture(scope="module")
def row(holdout: list[dict[str, Any]]) -> list[float]:
    return holdout[0]["features"]


def test_streamed_body_over_the_limit(server: tuple[LiveServer, Metrics], row: list[float]
                                      ) -> None:
    live, _ = server
    piece = orjson.dumps(v2_body([row]))

    def chunks() -> Iterator[bytes]:
        for _ in range(20):  # ~5.6 kB in all
            yield piece

    with httpx.Client(base_url=live.url, timeout=30) as client:
        r = client.post("/v2/models/bc-logreg/infer", content=chunks(),
                        headers={"content-type": "application/json"})
        assert r.request.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in r.request.headers
        assert r.status_code == 413, r.text
        assert "more than the limit of 2048 bytes" in r.json()["error"]
        assert len(r.headers["x-request-id"]) == 32
        # the connection (or a fresh one) still serves
        r = client.post("/v2/models/bc-logreg/infer", json=v2_body([row]))
        assert r.status_code == 200, r.text


def test_declared_length_over_the_limit_then_keep_alive(server: tuple[LiveServer, Metrics],
                                                        row: list[float]) -> None:
    live, _ = server
    big = orjson.dumps(v2_body([row] * 20))
    assert LIMIT < len(big) < 16384
    with httpx.Client(base_url=live.url, timeout=30) as client:
        for _ in range(3):
            r = client.post("/v2/models/bc-logreg/infer", content=big,
                            headers={"content-type": "application/json"})
            assert r.status_code == 413
            assert f"{len(big)} bytes is over the limit of {LIMIT}" in r.json()["error"]
            r = client.post("/v2/models/bc-logreg/infer", json=v2_body([row]),
                            headers={"x-request-id": "after-413"})
            assert r.status_code == 200, r.text
            assert r.headers["x-request-id"] == "after-413"


def test_streamed_body_under_the_limit(server: tuple[LiveServer, Metrics], row: list[float]
                                       ) -> None:
    live, _ = server
    payload = orjson.dumps(v2_body([row]))
    with httpx.Client(base_url=live.url, timeout=30) as client:
        r = client.post("/v2/models/bc-logreg/infer", content=iter([payload[:7], payload[7:]]),
                        headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.headers["x-shadowgate-model"] == "bc-logreg"


def test_requests_in_progress_gauge(server: tuple[LiveServer, Metrics], row: list[float]) -> None:
    live, metrics = server
    backend = live.server.config.app.state.runtime.service.snapshot.models.get("gate")

    def in_progress() -> float:
        return metrics.registry.get_sample_value("rest_server_requests_in_progress") or 0.0

    statuses: list[int] = []

    def call() -> None:
        r = httpx.post(f"{live.url}/v2/models/gate/infer", json=v2_body([row]), timeout=30)
        statuses.append(r.status_code)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        poll(lambda: in_progress() == 3, 20, "three requests in progress")
        # /metrics over HTTP says the same while they wait
        text = httpx.get(f"{live.url}/metrics", timeout=30).text
        assert "rest_server_requests_in_progress 3.0" in text
    finally:
        backend.release.set()
        for t in threads:
            t.join(30)
    assert statuses == [200, 200, 200]
    assert in_progress() == 0
    assert metrics.registry.get_sample_value("model_infer_request_success_total",
                                             {"model_name": "gate", "model_version": "1"}) == 3
