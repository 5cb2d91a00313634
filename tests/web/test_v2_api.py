"""The Open Inference Protocol V2 surface: server/model metadata, health, infer options."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from gateway import __version__
from tests.helpers import MODEL_NAMES, MODELS, Harness, config, harness, poll, v2_body

CARD = orjson.loads((MODELS / "bc-logreg" / "1" / "card.json").read_bytes())
INPUTS = [{"name": "input", "datatype": "FP32", "shape": [-1, 30]}]
OUTPUTS = [{"name": "label", "datatype": "INT64", "shape": [-1]},
           {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]


@pytest.fixture(scope="module")
def h() -> Iterator[Harness]:
    deployments = [{"name": "breast-cancer", "champion": "bc-logreg",
                    "canaries": [{"model": "bc-gbt", "weight": 25}],
                    "shadows": [{"model": "bc-rf"}]}]
    with harness(config(deployments)) as running:
        yield running


@pytest.fixture(scope="module")
def row(holdout: list[dict[str, Any]]) -> list[float]:
    return holdout[0]["features"]


def test_server_metadata(h: Harness) -> None:
    r = h.client.get("/v2")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"name": "shadowgate", "version": __version__, "extensions": [
        "binary_tensor_data", "model_configuration", "statistics", "model_repository",
        "parameters"]}


def test_liveness_and_readiness(h: Harness) -> None:
    assert h.client.get("/v2/health/live").json() == {"live": True}
    r = h.client.get("/v2/health/ready")
    assert (r.status_code, r.json()) == (200, {"ready": True})


def test_readiness_is_503_when_not_ready(h: Harness) -> None:
    runtime = h.app.state.runtime
    runtime.ready = False
    try:
        r = h.client.get("/v2/health/ready")
        assert r.status_code == 503
        assert "starting or shutting down" in r.json()["error"]
        assert h.client.get("/v2/models/bc-logreg/ready").status_code == 503
        assert h.client.get("/v2/health/live").status_code == 200
    finally:
        runtime.ready = True


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("suffix", ["", "/versions/1"])
def test_model_metadata(h: Harness, name: str, suffix: str) -> None:
    r = h.client.get(f"/v2/models/{name}{suffix}")
    assert r.status_code == 200, r.text
    meta = r.json()
    assert meta["name"] == name
    assert meta["versions"] == ["1"]
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == INPUTS
    assert meta["outputs"] == OUTPUTS
    params = meta["parameters"]
    assert params["class_labels"] == ["malignant", "benign"]
    assert (params["label_output"], params["scores_output"]) == ("label", "probabilities")
    assert params["features"] == CARD["features"]
    assert "deployment" not in params


def test_deployment_metadata(h: Harness) -> None:
    meta = h.client.get("/v2/models/breast-cancer").json()
    assert meta["name"] == "breast-cancer"
    assert meta["inputs"] == INPUTS and meta["outputs"] == OUTPUTS
    params = meta["parameters"]
    assert params["deployment"] is True
    assert params["champion"] == "bc-logreg:1"
    assert params["canaries"] == {"bc-gbt:1": 25.0}
    assert params["shadows"] == ["bc-rf:1"]
    assert params["revision"] == h.app.state.runtime.service.snapshot.revision
    assert params["features"] == CARD["features"]


@pytest.mark.parametrize("path", ["/v2/models/bc-gbt/ready", "/v2/models/bc-gbt/versions/1/ready",
                                  "/v2/models/breast-cancer/ready"])
def test_model_ready(h: Harness, path: str) -> None:
    r = h.client.get(path)
    assert r.status_code == 200
    assert r.json()["ready"] is True


@pytest.mark.parametrize("path", ["/v2/models/nope", "/v2/models/nope/ready",
                                  "/v2/models/bc-gbt/versions/9",
                                  "/v2/models/bc-gbt/versions/9/ready",
                                  "/v2/models/breast-cancer/versions/1",
                                  "/v2/models/breast-cancer/versions/1/ready"])
def test_metadata_of_unknown_targets_is_404(h: Harness, path: str) -> None:
    r = h.client.get(path)
    assert r.status_code == 404
    assert isinstance(r.json()["error"], str)


def test_id_is_echoed(h: Harness, row: list[float]) -> None:
    body = h.client.post("/v2/models/bc-logreg/infer", json=v2_body([row], id="req-42")).json()
    assert body["id"] == "req-42"
    body = h.client.post("/v2/models/bc-logreg/infer", json=v2_body([row])).json()
    assert "id" not in body


def test_response_names_model_and_version(h: Harness, row: list[float]) -> None:
    body = h.client.post("/v2/models/bc-rf/versions/1/infer", json=v2_body([row])).json()
    assert (body["model_name"], body["model_version"]) == ("bc-rf", "1")
    assert [o["name"] for o in body["outputs"]] == ["label", "probabilities"]
    assert [o["datatype"] for o in body["outputs"]] == ["INT64", "FP32"]
    assert [o["shape"] for o in body["outputs"]] == [[1], [1, 2]]


def test_deployment_response_carries_the_deployment_name(h: Harness, row: list[float]) -> None:
    r = h.client.post("/v2/models/breast-cancer/infer", json=v2_body([row]),
                      headers={"x-user-id": "u1"})
    assert r.status_code == 200, r.text
    assert r.json()["model_name"] == "breast-cancer"
    assert r.json()["model_version"] == "1"


@pytest.mark.parametrize("wanted", ["label", "probabilities"])
def test_outputs_selection_on_a_model(h: Harness, row: list[float], wanted: str) -> None:
    body = v2_body([row], outputs=[{"name": wanted}])
    r = h.client.post("/v2/models/bc-logreg/infer", json=body)
    assert r.status_code == 200, r.text
    assert [o["name"] for o in r.json()["outputs"]] == [wanted]


@pytest.mark.parametrize("wanted", ["label", "probabilities"])
def test_outputs_selection_on_a_deployment(h: Harness, row: list[float], wanted: str) -> None:
    """Regression: the paired record needs every output, the caller gets only the chosen."""
    body = v2_body([row], outputs=[{"name": wanted}])
    rid = f"select-{wanted}"
    r = h.client.post("/v2/models/breast-cancer/infer", json=body, headers={"x-request-id": rid})
    assert r.status_code == 200, r.text
    assert [o["name"] for o in r.json()["outputs"]] == [wanted]

    def record() -> Any:
        return next((x for x in h.sink.records if x["request_id"] == rid), None)

    poll(lambda: record() is not None, 10, f"the record of {rid}")
    served = next(p for p in record()["predictions"] if p["served"])
    assert set(served["output"]) >= {"label", "scores"}


def test_unknown_output_is_400(h: Harness, row: list[float]) -> None:
    r = h.client.post("/v2/models/bc-logreg/infer", json=v2_body([row], outputs=[{"name": "x"}]))
    assert r.status_code == 400
    msg = r.json()["error"]
    assert "outputs" in msg and "'x'" in msg and "probabilities" in msg


def test_nested_and_flat_data_give_the_same_answer(h: Harness, holdout: list[dict[str, Any]]
                                                   ) -> None:
    rows = [holdout[i]["features"] for i in range(3)]
    nested = h.client.post("/v2/models/bc-gbt/infer", json=v2_body(rows))
    flat_body = v2_body(rows)
    flat_body["inputs"][0]["data"] = [v for r in rows for v in r]
    flat = h.client.post("/v2/models/bc-gbt/infer", json=flat_body)
    assert nested.status_code == flat.status_code == 200
    assert nested.json() == flat.json()


def test_parameters_are_accepted(h: Harness, row: list[float]) -> None:
    body = v2_body([row], parameters={"content_type": "np", "anything": [1, 2]})
    body["inputs"][0]["parameters"] = {"content_type": "np"}
    body["outputs"] = [{"name": "label", "parameters": {"binary_data": False}}]
    r = h.client.post("/v2/models/bc-logreg/infer", json=body)
    assert r.status_code == 200, r.text


def test_integer_json_values_are_accepted_for_fp32(h: Harness) -> None:
    r = h.client.post("/v2/models/bc-logreg/infer", json=v2_body([[1] * 30]))
    assert r.status_code == 200, r.text


def test_content_type_with_charset_and_json_suffix(h: Harness, row: list[float]) -> None:
    payload = orjson.dumps(v2_body([row]))
    for ctype in ("application/json; charset=utf-8", "application/vnd.oip+json", None):
        headers = {} if ctype is None else {"content-type": ctype}
        r = h.client.post("/v2/models/bc-logreg/infer", content=payload, headers=headers)
        assert r.status_code == 200, (ctype, r.text)
