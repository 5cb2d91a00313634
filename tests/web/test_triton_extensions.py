"""Triton's extensions over HTTP (model configuration, statistics, repository index) and
its metric names beside MLServer's: who a request is counted under."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gateway.protocol.signature import Signature, TensorSpec
from tests.helpers import Harness, config, harness, poll, v2_body

DEPLOYMENTS = [{"name": "breast-cancer", "champion": "bc-logreg",
                "shadows": [{"model": "bc-gbt"}], "canaries": [{"model": "bc-rf", "weight": 50}],
                "routing": {"allow_force": True}}]


@pytest.fixture
def h() -> Iterator[Harness]:
    with harness(config(DEPLOYMENTS)) as running:
        yield running


@pytest.fixture(scope="module")
def row(holdout: list[dict[str, Any]]) -> list[float]:
    return holdout[0]["features"]


def test_model_config(h: Harness) -> None:
    config_ = h.client.get("/v2/models/breast-cancer/config").json()
    assert config_ == {
        "name": "breast-cancer", "platform": "onnxruntime_onnx", "backend": "onnxruntime",
        "max_batch_size": 4 * 1024 * 1024 // (30 * 4),  # rows that fit in the body limit
        "input": [{"name": "input", "data_type": "TYPE_FP32", "dims": [30]}],
        "output": [{"name": "label", "data_type": "TYPE_INT64", "dims": [1],
                    "reshape": {"shape": []}},
                   {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [2]}]}
    assert h.client.get("/v2/models/bc-rf/versions/1/config").json()["name"] == "bc-rf"
    r = h.client.get("/v2/models/ghost/config")
    assert r.status_code == 404 and "'ghost'" in r.json()["error"]


def test_a_model_without_a_batch_dimension_has_max_batch_size_0() -> None:
    from gateway.describe import model_config
    from tests.backends import Fake

    fixed = Fake("fixed", "1", {})
    fixed.signature = Signature((TensorSpec("image", "UINT8", (2, 3)),
                                 TensorSpec("text", "BYTES", (-1,))),
                                (TensorSpec("score", "FP64", (1,)),))
    got = model_config(fixed, 1000)  # type: ignore[arg-type]
    assert got["max_batch_size"] == 0
    assert got["input"] == [{"name": "image", "data_type": "TYPE_UINT8", "dims": [2, 3]},
                            {"name": "text", "data_type": "TYPE_STRING", "dims": [-1]}]
    assert got["output"] == [{"name": "score", "data_type": "TYPE_FP64", "dims": [1]}]


def test_statistics_of_a_deployment_and_of_its_models(h: Harness, row: list[float]) -> None:
    for user in range(8):
        assert h.client.post("/v2/models/breast-cancer/infer", json=v2_body([row, row]),
                             headers={"x-shadowgate-variant": "champion" if user % 2
                                      else "canary"}).status_code == 200
    h.client.post("/v2/models/breast-cancer/infer", content=b"{")
    poll(lambda: h.client.get("/v2/models/bc-gbt/stats").json()["model_stats"][0][
        "inference_stats"]["success"]["count"] == 8, 10, "the shadow's executions")
    [dep] = h.client.get("/v2/models/breast-cancer/stats").json()["model_stats"]
    assert (dep["name"], dep["version"]) == ("breast-cancer", "0")
    assert dep["inference_stats"]["success"]["count"] == 8
    assert dep["inference_stats"]["fail"]["count"] == 1
    assert dep["inference_count"] == 16
    assert dep["inference_stats"]["success"]["ns"] >= \
        dep["inference_stats"]["compute_infer"]["ns"] > 0
    [logreg] = h.client.get("/v2/models/bc-logreg/versions/1/stats").json()["model_stats"]
    # 4 answers, 4 shadow runs (the champion shadows the canary's requests)
    poll(lambda: h.client.get("/v2/models/bc-logreg/stats").json()["model_stats"][0][
        "inference_stats"]["success"]["count"] == 8, 10, "the champion's shadow runs")
    assert logreg["inference_stats"]["fail"]["count"] == 0
    every = h.client.get("/v2/models/stats").json()["model_stats"]
    assert {(s["name"], s["version"]) for s in every} == {
        ("breast-cancer", "0"), ("bc-logreg", "1"), ("bc-gbt", "1"), ("bc-rf", "1")}
    r = h.client.get("/v2/models/bc-rf/versions/9/stats")
    assert r.status_code == 404 and "no version '9'" in r.json()["error"]
    r = h.client.get("/v2/models/breast-cancer/versions/1/stats")
    assert r.status_code == 404 and "is a deployment" in r.json()["error"]
    assert h.client.get("/v2/models/breast-cancer/versions/0/stats").json() == \
        h.client.get("/v2/models/breast-cancer/stats").json()
    assert h.client.get("/v2/models/ghost/stats").status_code == 404


def test_repository_index_and_no_load_or_unload(h: Harness) -> None:
    index = h.client.post("/v2/repository/index").json()
    assert index[0] == {"name": "breast-cancer", "state": "READY"}
    assert {"name": "bc-rf", "version": "1", "state": "READY"} in index
    assert h.client.post("/v2/repository/index", json={"ready": True}).json() == index
    r = h.client.post("/v2/repository/index", json={"ready": "yes"})
    assert r.status_code == 400 and "'ready'" in r.json()["error"]
    r = h.client.post("/v2/repository/models/bc-rf/load", json={})
    assert r.status_code == 501 and "load: models are loaded and unloaded by editing the " \
        "config file" in r.json()["error"]


def test_refused_before_routing_is_counted_under_the_deployment(h: Harness,
                                                                 row: list[float]) -> None:
    c = h.client
    refusals = [
        c.post("/v2/models/breast-cancer/infer", content=b"{"),
        c.post("/v2/models/breast-cancer/infer", json=v2_body([row]),
               headers={"content-type": "text/plain"}),
        c.post("/v2/models/breast-cancer/infer", json=v2_body([row]),
               headers={"x-shadowgate-variant": "nonsense"}),
    ]
    for r in refusals:
        assert 400 <= r.status_code < 500
        assert "x-shadowgate-model" not in r.headers
    refused = {"model_name": "breast-cancer", "model_version": ""}
    assert h.metric("model_infer_request_failure_total", **refused, reason="bad_request") == 2
    assert h.metric("model_infer_request_failure_total", **refused,
                    reason="unsupported_media_type") == 1
    for model in ("bc-logreg", "bc-rf"):
        for reason in ("bad_request", "unsupported_media_type"):
            assert h.metric("model_infer_request_failure_total", model_name=model,
                            model_version="1", reason=reason) == 0
    assert h.metric("nv_inference_request_failure", model="breast-cancer", version="") == 3
    assert h.metric("nv_inference_request_failure", model="bc-logreg", version="1") == 0
    # Refused by the model it was routed to (its signature): counted under that model.
    r = c.post("/v2/models/breast-cancer/infer", json=v2_body([row[:4]]),
               headers={"x-shadowgate-variant": "canary"})
    assert r.status_code == 400 and "x-shadowgate-model" not in r.headers
    assert h.metric("model_infer_request_failure_total", model_name="bc-rf",
                    model_version="1", reason="invalid_input") == 1
    assert h.metric("nv_inference_request_failure", model="bc-rf", version="1") == 1
    assert h.metric("nv_inference_request_failure", model="breast-cancer", version="") == 4


def test_triton_families_beside_mlserver(h: Harness, row: list[float]) -> None:
    for variant in ("champion", "champion", "canary"):
        h.client.post("/v2/models/breast-cancer/infer", json=v2_body([row] * 3),
                      headers={"x-shadowgate-variant": variant})
    assert h.metric("model_infer_request_success_total", model_name="bc-logreg",
                    model_version="1") == 2
    assert h.metric("nv_inference_request_success", model="breast-cancer", version="") == 3
    assert h.metric("nv_inference_count", model="breast-cancer", version="") == 9
    assert h.metric("nv_inference_exec_count", model="breast-cancer", version="") == 3
    assert h.metric("nv_inference_request_duration_us", model="breast-cancer", version="") >= \
        h.metric("nv_inference_compute_infer_duration_us", model="breast-cancer",
                 version="") > 0
    assert h.metric("nv_inference_queue_duration_us", model="breast-cancer", version="") == 0
    # Shadows get their own series: bc-gbt ran for all 3, bc-logreg shadowed the canary's.
    poll(lambda: h.metric("nv_inference_request_success", model="bc-gbt", version="1") == 3
         and h.metric("nv_inference_request_success", model="bc-logreg", version="1") == 3,
         10, "shadow executions")
    assert h.metric("nv_inference_count", model="bc-gbt", version="1") == 9
    assert 1 <= h.metric("nv_inference_exec_count", model="bc-gbt", version="1") <= 3
    assert h.metric("nv_inference_request_duration_us", model="bc-gbt", version="1") > 0
    assert h.metric("model_infer_request_success_total", model_name="bc-gbt",
                    model_version="1") == 0  # MLServer's family: answers to callers only
