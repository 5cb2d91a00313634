"""A remote model whose metadata lists no inputs or outputs (as MLServer's does), against
a minimal V2 server started by the test: cards, unknown signatures, errors, request ids."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from gateway.backends.card import load_card
from gateway.backends.remote import RemoteBackend
from gateway.config.schema import RemoteSpec
from gateway.metrics import Metrics
from gateway.predlog.record import PairedRecord, Prediction
from gateway.predlog.sink import MemorySink
from gateway.traffic.mirror import Job, ShadowWorker
from gateway.traffic.pairing import PendingRecord
from tests.helpers import MODELS, LiveServer, config, harness, v2_body
from tests.traffic.remote_checks import assert_answers_like, post_in_batches
from tests.traffic.v2_server import MiniV2

CARD = str(MODELS / "bc-logreg" / "1" / "card.json")
CLASSIFIER = {"class_labels": ["malignant", "benign"], "label_output": "label",
              "scores_output": "probabilities"}


@pytest.fixture
def mini() -> Iterator[tuple[MiniV2, LiveServer]]:
    server = MiniV2()
    with LiveServer(server.app()) as live:
        yield server, live


def remote(url: str, name: str = "mini-lr", **extra: Any) -> dict[str, Any]:
    return {"name": name, "remote": {"url": url, "model": "bc-logreg", "timeout_ms": 5000,
                                     **extra}}


def shadowed(url: str, **extra: Any) -> dict[str, Any]:
    """bc-logreg champion (local) with the remote as its shadow."""
    return config([{"name": "breast-cancer", "champion": "bc-logreg",
                    "shadows": [{"model": "mini-lr", "timeout_ms": 5000}]}],
                  models=[{"name": "bc-logreg"}, remote(url, **extra)])


def test_a_remote_with_a_card_records_what_the_local_champion_records(
        mini: tuple[MiniV2, LiveServer], holdout: list[dict]) -> None:
    server, live = mini
    with harness(shadowed(live.url, card=CARD)) as h:
        sizes = [1] * 20 + [5, 3]
        post_in_batches(h, holdout, sizes)
        h.wait_records(len(sizes))
        for record in h.sink.records:
            local, far = record["predictions"]
            assert_answers_like(local, far, record["rows"])
            assert set(far["output"]["label"]) <= {"malignant", "benign"}
            assert list(far["output"]["classes"]) == ["malignant", "benign"]
        # The card declares the signature: the remote's [n, 1] label answers as [n].
        r = h.client.post("/v2/models/mini-lr/infer", json=v2_body([holdout[0]["features"]]))
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["shape"] == [1]
        meta = h.client.get("/v2/models/mini-lr").json()
        assert meta["inputs"][0]["name"] == "input"
        assert "unknown" not in meta["parameters"]
    assert sum(c.rows for c in server.calls) == sum(sizes) + 1


def test_unknown_signature_passes_requests_through_and_says_so(
        mini: tuple[MiniV2, LiveServer], holdout: list[dict],
        caplog: pytest.LogCaptureFixture) -> None:
    _, live = mini
    data = config([{"name": "far", "champion": "mini-lr"}],
                  models=[remote(live.url, classifier=CLASSIFIER)])
    with caplog.at_level(logging.WARNING, "gateway.backends.remote"), harness(data) as h:
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("inputs unknown" in w and "passed through unchecked" in w
                   for w in warnings), warnings
        assert any("outputs unknown" in w for w in warnings), warnings
        for path in ("/v2/models/mini-lr", "/v2/models/far"):
            meta = h.client.get(path).json()
            assert meta["inputs"] == [] and meta["outputs"] == []
            assert meta["parameters"]["unknown"] == ["inputs", "outputs"]
            assert "passed through" in meta["parameters"]["note"]
            assert meta["parameters"]["class_labels"] == ["malignant", "benign"]
        rows = [r["features"] for r in holdout[:2]]
        r = h.client.post("/v2/models/far/infer", json=v2_body(rows))
        assert r.status_code == 200, r.text
        # Output names are checked against the answer.
        r = h.client.post("/v2/models/far/infer",
                          json=v2_body(rows, outputs=[{"name": "probabilities"}]))
        assert [o["name"] for o in r.json()["outputs"]] == ["probabilities"]
        r = h.client.post("/v2/models/far/infer", json=v2_body(rows, outputs=[{"name": "x"}]))
        assert r.status_code == 400 and "unknown output(s) ['x']" in r.json()["error"]
        # Not checked here, refused there: the remote's 400 and message, not a 502.
        r = h.client.post("/v2/models/far/infer", json=v2_body(rows, name="features"))
        assert r.status_code == 400, r.text
        assert "expected one input named 'input'" in r.json()["error"]
        assert "mini-lr" in r.json()["error"]
        assert h.metric("model_infer_request_failure_total", model_name="mini-lr",
                        model_version="1", reason="remote_rejected") == 1


@pytest.mark.parametrize(("remote_status", "caller_status"),
                         [(422, 422), (413, 413), (404, 502), (401, 502), (500, 502),
                          (503, 502)])
def test_remote_statuses(holdout: list[dict], remote_status: int, caller_status: int) -> None:
    server = MiniV2(fail=remote_status)
    with LiveServer(server.app()) as live:
        data = config([], models=[remote(live.url, card=CARD)])
        with harness(data) as h:
            r = h.client.post("/v2/models/mini-lr/infer",
                              json=v2_body([holdout[0]["features"]]))
            assert r.status_code == caller_status, r.text
            assert "this server is told to fail" in r.json()["error"]


def test_the_remote_refusing_a_shadow_input_is_recorded(
        mini: tuple[MiniV2, LiveServer]) -> None:
    # The champion takes 4 features; the remote (unknown inputs, so nothing is checked
    # here) wants 30: its own error lands in the record.
    _, live = mini
    models = [{"name": "four", "python": "tests.backends:fake", "options": {"width": 4}},
              remote(live.url, classifier=CLASSIFIER)]
    data = config([{"name": "d", "champion": "four", "shadows": [{"model": "mini-lr"}]}],
                  models=models)
    with harness(data) as h:
        assert h.client.post("/v2/models/d/infer",
                             json=v2_body([[1.0, 2.0, 3.0, 4.0]])).status_code == 200
        h.wait_records(1)
        shadow = h.sink.records[0]["predictions"][1]
        assert shadow["status"] == "error"
        assert "refused the input" in shadow["error"] and "expected [n, 30]" in shadow["error"]


def test_request_ids_reach_the_remote(mini: tuple[MiniV2, LiveServer],
                                      holdout: list[dict]) -> None:
    server, live = mini
    data = config([{"name": "far", "champion": "mini-lr"}],
                  models=[remote(live.url, classifier=CLASSIFIER)])
    rows = [holdout[0]["features"]]
    with harness(data) as h:
        h.client.post("/v2/models/far/infer", json=v2_body(rows, id="v2-7"),
                      headers={"x-request-id": "trace-7"})
        r = h.client.post("/v2/models/far/infer", json=v2_body(rows))
    first, second = server.calls
    assert (first.headers["x-request-id"], first.id) == ("trace-7", "v2-7")
    # Without a V2 id the request id is the body's id too.
    assert second.headers["x-request-id"] == second.id == r.headers["x-request-id"]
    assert "x-shadowgate-batch-ids" not in first.headers


def entry(role: Any, served: bool) -> Prediction:
    return {"role": role, "model": "m", "version": "1", "served": served,
            "status": "dropped", "latency_ms": None, "error": None, "output": None}


def pending(request_id: str, sink: MemorySink) -> PendingRecord:
    record = PairedRecord(v=1, request_id=request_id, ts=0.0, deployment="d", revision="x",
                          key_hash=None, bucket=0, variant="champion", rows=1,
                          predictions=[entry("champion", True), entry("shadow", False)],
                          inputs=None)
    return PendingRecord(record, sink, 1)


@pytest.mark.parametrize("declared", [{"card": CARD}, {"classifier": CLASSIFIER}])
async def test_shadow_calls_carry_their_request_ids(
        mini: tuple[MiniV2, LiveServer], declared: dict[str, Any]) -> None:
    # A known signature concatenates the micro-batch into one call (first id, all ids in
    # x-shadowgate-batch-ids); an unknown one calls once per request, each with its ids.
    server, live = mini
    backend = RemoteBackend("mini-lr", "1", RemoteSpec.model_validate(
        {"url": live.url, "model": "bc-logreg", "timeout_ms": 5000,
         **({"classifier": CLASSIFIER} if "classifier" in declared else {})}),
        card=None if "classifier" in declared else load_card(Path(CARD)))
    await backend.start()
    worker = ShadowWorker(backend, Metrics(CollectorRegistry()), queue_size=10, max_batch=8,
                          max_wait_s=0)
    sink = MemorySink()
    rows = np.random.default_rng(3).random((3, 30), dtype=np.float32)
    for i in range(3):
        worker.submit(Job({"input": rows[i:i + 1]}, 1, pending(f"r{i}", sink), 1, 5.0,
                          v2_id=f"v{i}" if i else None))
    assert await worker.run_once() == 3
    await backend.close()
    assert [r["predictions"][1]["status"] for r in sink.records] == ["ok"] * 3
    assert {tuple(r["predictions"][1]["output"]["label"]) for r in sink.records} <= {
        ("malignant",), ("benign",)}
    if "card" in declared:
        [call] = server.calls
        assert call.rows == 3
        assert call.headers["x-request-id"] == call.id == "r0"
        assert call.headers["x-shadowgate-batch-ids"] == "r0,r1,r2"
    else:
        assert [(c.headers["x-request-id"], c.id, c.rows) for c in server.calls] == [
            ("r0", "r0", 1), ("r1", "v1", 1), ("r2", "v2", 1)]
        assert not any("x-shadowgate-batch-ids" in c.headers for c in server.calls)
