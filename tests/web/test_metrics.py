"""GET /metrics: Prometheus text with MLServer/Triton-style names, counts matching traffic."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import config, harness, v2_body

LOGREG = {"model_name": "bc-logreg", "model_version": "1"}
GBT = {"model_name": "bc-gbt", "model_version": "1"}


@pytest.fixture(scope="module")
def row(holdout: list[dict[str, Any]]) -> list[float]:
    return holdout[0]["features"]


def test_counts_match_the_traffic(row: list[float]) -> None:
    with harness(config()) as h:
        c = h.client
        for _ in range(3):
            assert c.post("/v2/models/breast-cancer/infer", json=v2_body([row])).status_code == 200
        assert c.post("/predict", json={"instances": [row, row]}).status_code == 200
        for _ in range(2):
            assert c.post("/v2/models/bc-gbt/versions/1/infer",
                          json=v2_body([row])).status_code == 200
        assert c.post("/v2/models/bc-gbt/infer", json=v2_body([row], name="x")).status_code == 400
        assert c.post("/v2/models/bc-logreg/infer", content=b"[").status_code == 400
        assert c.post("/v2/models/nope/infer", json=v2_body([row])).status_code == 404

        assert h.metric("model_infer_request_success_total", **LOGREG) == 4
        assert h.metric("model_infer_request_success_total", **GBT) == 2
        assert h.metric("model_infer_request_failure_total", **GBT, reason="invalid_input") == 1
        assert h.metric("model_infer_request_failure_total", **LOGREG, reason="bad_request") == 1
        assert h.metric("model_infer_request_duration_seconds_count", **LOGREG) == 4
        assert h.metric("model_infer_request_duration_seconds_count", **GBT) == 2
        # compute is timed only when the model ran
        assert h.metric("model_infer_compute_duration_seconds_count", **LOGREG) == 4
        assert h.metric("model_infer_compute_duration_seconds_count", **GBT) == 2
        assert h.metric("model_infer_request_duration_seconds_sum", **LOGREG) >= \
            h.metric("model_infer_compute_duration_seconds_sum", **LOGREG) > 0
        assert h.metric("shadowgate_variant_requests_total", deployment="breast-cancer",
                        variant="champion") == 4
        assert h.metric("rest_server_requests_in_progress") == 0


def test_exposition_text(row: list[float]) -> None:
    with harness(config()) as h:
        h.client.post("/v2/models/bc-logreg/infer", json=v2_body([row]))
        h.client.post("/v2/models/bc-logreg/infer", json=v2_body([row], name="nope"))
        r = h.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert families["model_infer_request_success"].type == "counter"
    assert families["model_infer_request_failure"].type == "counter"
    assert families["model_infer_request_duration_seconds"].type == "histogram"
    assert families["model_infer_compute_duration_seconds"].type == "histogram"
    assert families["rest_server_requests_in_progress"].type == "gauge"

    def samples(family: str, suffix: str = "") -> dict[tuple[tuple[str, str], ...], float]:
        return {tuple(sorted(s.labels.items())): s.value for s in families[family].samples
                if s.name == family + suffix}

    success = samples("model_infer_request_success", "_total")
    assert success[tuple(sorted(LOGREG.items()))] == 1
    failure = samples("model_infer_request_failure", "_total")
    assert failure[tuple(sorted({**LOGREG, "reason": "invalid_input"}.items()))] == 1
    buckets = [s for s in families["model_infer_request_duration_seconds"].samples
               if s.name.endswith("_bucket") and s.labels["model_name"] == "bc-logreg"]
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == 1
    assert "_created" not in r.text  # disabled on purpose


def test_every_model_is_listed_before_any_traffic() -> None:
    with harness(config()) as h:
        text = h.client.get("/metrics").text
    for name in ("bc-logreg", "bc-gbt", "bc-rf"):
        assert (f'model_infer_request_success_total{{model_name="{name}",model_version="1"}} 0.0'
                in text)


def test_registries_are_not_shared(row: list[float]) -> None:
    with harness(config()) as first:
        first.client.post("/v2/models/bc-logreg/infer", json=v2_body([row]))
        assert first.metric("model_infer_request_success_total", **LOGREG) == 1
    with harness(config()) as second:
        assert second.metric("model_infer_request_success_total", **LOGREG) == 0
