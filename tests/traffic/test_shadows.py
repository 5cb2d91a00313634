"""Shadows never touch the caller: slow, failing and overloaded shadows show up in records
and metrics only."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort

from gateway.backends.onnx import OnnxBackend
from gateway.metrics import Metrics
from gateway.predlog.record import PairedRecord, Prediction, Role
from gateway.predlog.sink import MemorySink
from gateway.traffic.mirror import BATCHES_PER_TURN, Job, ShadowWorker
from gateway.traffic.pairing import PendingRecord
from tests.helpers import MODELS, config, harness, v2_body

FAKES = [
    {"name": "sleepy", "version": "1", "python": "tests.backends:fake", "options": {"delay": 1}},
    {"name": "broken", "version": "1", "python": "tests.backends:fake",
     "options": {"fail": True}},
]


def with_shadows(shadows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    models = [{"name": n, "version": "1"} for n in ("bc-logreg", "bc-gbt", "bc-rf")] + FAKES
    return config([{"name": "breast-cancer", "champion": "bc-logreg", "shadows": shadows}],
                  models=models, **extra)


def champion_probs(rows: list[list[float]]) -> np.ndarray:
    session = ort.InferenceSession(str(MODELS / "bc-logreg/1/model.onnx"))
    return session.run(["probabilities"], {"input": np.array(rows, dtype=np.float32)})[0]


def test_three_shadows_pair_with_every_request(holdout: list[dict]) -> None:
    shadows = [{"model": m, "sample_percent": 100} for m in ("bc-gbt", "bc-rf")]
    shadows.append({"model": "broken", "sample_percent": 100})
    rows = [r["features"] for r in holdout[:40]]
    with harness(with_shadows(shadows)) as h:
        for i, row in enumerate(rows):
            r = h.client.post("/v2/models/breast-cancer/infer", json=v2_body([row]),
                              headers={"x-request-id": f"req-{i}"})
            assert r.status_code == 200
        h.wait_records(len(rows))
        records = {rec["request_id"]: rec for rec in h.sink.records}
        assert set(records) == {f"req-{i}" for i in range(len(rows))}
        for rec in records.values():
            preds = rec["predictions"]
            assert [(p["model"], p["role"], p["served"]) for p in preds] == [
                ("bc-logreg", "champion", True), ("bc-gbt", "shadow", False),
                ("bc-rf", "shadow", False), ("broken", "shadow", False)]
            assert [p["status"] for p in preds] == ["ok", "ok", "ok", "error"]
            assert "always fails" in preds[3]["error"]
            assert preds[1]["output"]["label"][0] in ("malignant", "benign")
            assert rec["inputs"]["input"]["shape"] == [1, 30]
        assert h.metric("shadowgate_shadow_results_total", model_name="broken",
                        model_version="1", status="error") == len(rows)
        assert h.metric("shadowgate_shadow_results_total", model_name="bc-gbt",
                        model_version="1", status="ok") == len(rows)


def test_sleeping_shadow_never_delays_or_breaks_the_champion(holdout: list[dict]) -> None:
    shadows = [{"model": "sleepy", "sample_percent": 100, "timeout_ms": 50},
               {"model": "broken", "sample_percent": 100}]
    rows = [r["features"] for r in holdout[:60]]
    expected = champion_probs(rows)
    data = with_shadows(shadows, mirror={"queue_size": 8, "max_batch": 4, "max_wait_ms": 1})
    with harness(data) as h:
        for i, row in enumerate(rows):
            r = h.client.post("/v2/models/breast-cancer/infer", json=v2_body([row]))
            assert r.status_code == 200
            assert r.headers["x-shadowgate-model"] == "bc-logreg"
            got = np.array(r.json()["outputs"][1]["data"], dtype=np.float32)
            np.testing.assert_allclose(got, expected[i], atol=1e-6)
        # Every request still yields exactly one record (shadow timed out or was dropped).
        h.wait_records(len(rows), timeout=30)
        sleepy = [rec["predictions"][1] for rec in h.sink.records]
        assert {p["status"] for p in sleepy} <= {"timeout", "dropped"}
        assert any(p["status"] == "timeout" for p in sleepy)
        timeouts = h.metric("shadowgate_shadow_results_total", model_name="sleepy",
                            model_version="1", status="timeout")
        dropped = h.metric("shadowgate_shadow_dropped_total", model_name="sleepy",
                           model_version="1", reason="queue_full")
        assert timeouts + dropped == len(rows)
        assert dropped == sum(p["status"] == "dropped" for p in sleepy) > 0
        # The failing shadow shares the small queue's fate: each job fails or is dropped.
        broken = [rec["predictions"][2] for rec in h.sink.records]
        errors = h.metric("shadowgate_shadow_results_total", model_name="broken",
                          model_version="1", status="error")
        assert errors == sum(p["status"] == "error" for p in broken) > 0
        assert errors + h.metric("shadowgate_shadow_dropped_total", model_name="broken",
                                 model_version="1", reason="queue_full") == len(rows)


def test_shadow_with_other_signature_is_an_error_entry(holdout: list[dict]) -> None:
    # A candidate that takes 40 features, shadowing a champion that takes 30: the shadow's
    # entry is an error naming the mismatch, the champion's answer is unaffected.
    models = [{"name": "bc-logreg", "version": "1"}, {
        "name": "wide", "version": "1", "python": "tests.backends:fake",
        "options": {"width": 40}}]
    data = config([{"name": "breast-cancer", "champion": "bc-logreg",
                    "shadows": [{"model": "wide"}]}], models=models)
    with harness(data) as h:
        assert h.client.post("/predict", json={"instances": [holdout[0]["features"]]}
                             ).status_code == 200
        h.wait_records(1)
        champion, wide = h.sink.records[0]["predictions"]
        assert champion["status"] == "ok"
        assert wide["status"] == "error" and wide["output"] is None
        assert "input does not fit this model" in wide["error"]
        assert "[-1, 40]" in wide["error"] and "[1, 30]" in wide["error"]
        assert h.metric("shadowgate_shadow_results_total", model_name="wide",
                        model_version="1", status="error") == 1


def test_sampling_zero_runs_no_shadow(holdout: list[dict]) -> None:
    with harness(with_shadows([{"model": "bc-gbt", "sample_percent": 0}])) as h:
        for _ in range(20):
            h.client.post("/predict", json={"instances": [holdout[0]["features"]]})
        h.wait_records(20)
        assert all(len(rec["predictions"]) == 1 for rec in h.sink.records)


def entry(role: Role, served: bool) -> Prediction:
    return {"role": role, "model": "bc-rf", "version": "1", "served": served,
            "status": "dropped", "latency_ms": None, "error": None, "output": None}


async def test_a_worker_turn_is_bounded_and_the_backlog_still_drains() -> None:
    # A fast shadow runs inline and never suspends: one turn must stop after a few batches
    # (requests wait on the same event loop) and the next turns take the rest, in order.
    backend = OnnxBackend("bc-rf", "1", MODELS / "bc-rf" / "1")
    backend.warmup()
    worker = ShadowWorker(backend, Metrics(), queue_size=1000, max_batch=8, max_wait_s=0)
    sink = MemorySink()
    rows = np.random.default_rng(1).random((100, 30), dtype=np.float32)
    for i in range(100):
        record = PairedRecord(v=1, request_id=f"r{i}", ts=0.0, deployment="d", revision="x",
                              key_hash=None, bucket=0, variant="champion", rows=1,
                              predictions=[entry("champion", True), entry("shadow", False)],
                              inputs=None)
        worker.submit(Job({"input": rows[i:i + 1]}, 1, PendingRecord(record, sink, 1), 1, 1.0))
    assert await worker.run_once() == BATCHES_PER_TURN * 8
    assert worker.queue.qsize() == 100 - BATCHES_PER_TURN * 8
    while not worker.queue.empty():
        await worker.run_once()
    assert [r["request_id"] for r in sink.records] == [f"r{i}" for i in range(100)]
    assert {r["predictions"][1]["status"] for r in sink.records} == {"ok"}
    await backend.close()
