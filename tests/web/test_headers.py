"""Response headers: x-request-id on everything, x-shadowgate-model/-version on inference."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest

from tests.backends import Fake
from tests.helpers import Harness, config, harness, v2_body

GENERATED = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def h() -> Iterator[Harness]:
    deployments = [{"name": "breast-cancer", "champion": "bc-logreg",
                    "canaries": [{"model": "bc-gbt", "weight": 50}],
                    "routing": {"header": "x-user-id", "allow_force": True}}]
    with harness(config(deployments)) as running:
        yield running


@pytest.fixture(scope="module")
def row(holdout: list[dict[str, Any]]) -> list[float]:
    return holdout[0]["features"]


def requests(row: list[float]) -> list[tuple[str, str, Any, int]]:
    return [
        ("GET", "/v2", None, 200),
        ("GET", "/v2/health/ready", None, 200),
        ("GET", "/v2/models/bc-gbt", None, 200),
        ("GET", "/metrics", None, 200),
        ("GET", "/openapi.json", None, 200),
        ("POST", "/v2/models/bc-gbt/infer", v2_body([row]), 200),
        ("POST", "/predict", {"instances": [row]}, 200),
        ("POST", "/v2/models/bc-gbt/infer", {"inputs": []}, 400),
        ("POST", "/v2/models/nope/infer", v2_body([row]), 404),
        ("GET", "/v2/models/nope", None, 404),
        ("GET", "/no/such/route", None, 404),
        ("GET", "/predict", None, 405),
    ]


def test_every_response_has_a_generated_request_id(h: Harness, row: list[float]) -> None:
    seen = set()
    for method, path, body, status in requests(row):
        r = h.client.request(method, path, json=body)
        assert r.status_code == status, (path, r.text)
        rid = r.headers.get("x-request-id", "")
        assert GENERATED.match(rid), (path, rid)
        seen.add(rid)
    assert len(seen) == len(requests(row))  # a new id per request


@pytest.mark.parametrize("rid", ["abc-123", "a" * 128, "0f:/+=~!", "Ünïcode".encode().hex()])
def test_a_sane_caller_id_is_echoed(h: Harness, row: list[float], rid: str) -> None:
    for method, path, body, status in requests(row):
        r = h.client.request(method, path, json=body, headers={"x-request-id": rid})
        assert r.status_code == status
        assert r.headers["x-request-id"] == rid, path


@pytest.mark.parametrize("rid", ["a" * 129, "has space", "tab\there", "", "a\x7fb"])
def test_an_insane_caller_id_is_replaced(h: Harness, row: list[float], rid: str) -> None:
    r = h.client.post("/v2/models/bc-gbt/infer", json=v2_body([row]),
                      headers={"x-request-id": rid})
    assert r.status_code == 200
    assert GENERATED.match(r.headers["x-request-id"])
    r = h.client.get("/nope", headers={"x-request-id": rid})
    assert GENERATED.match(r.headers["x-request-id"])


def test_request_id_is_sent_once(h: Harness, row: list[float]) -> None:
    r = h.client.post("/v2/models/bc-gbt/infer", json=v2_body([row]),
                      headers={"x-request-id": "once"})
    assert r.headers.get_list("x-request-id") == ["once"]


def test_predict_body_id_defaults_to_the_request_id(h: Harness, row: list[float]) -> None:
    r = h.client.post("/predict", json={"instances": [row]}, headers={"x-request-id": "rid-7"})
    assert r.json()["id"] == "rid-7"
    r = h.client.post("/predict", json={"instances": [row], "id": "mine"},
                      headers={"x-request-id": "rid-8"})
    assert r.json()["id"] == "mine"
    assert r.headers["x-request-id"] == "rid-8"


@pytest.mark.parametrize("name", ["bc-logreg", "bc-gbt", "bc-rf"])
def test_model_headers_on_direct_infer(h: Harness, row: list[float], name: str) -> None:
    for path in (f"/v2/models/{name}/infer", f"/v2/models/{name}/versions/1/infer"):
        r = h.client.post(path, json=v2_body([row]))
        assert r.headers["x-shadowgate-model"] == name
        assert r.headers["x-shadowgate-version"] == "1"
        assert "x-shadowgate-variant" not in r.headers


@pytest.mark.parametrize(("variant", "model"), [("champion", "bc-logreg"), ("canary", "bc-gbt")])
def test_model_headers_name_the_variant_that_answered(h: Harness, row: list[float],
                                                       variant: str, model: str) -> None:
    force = {"x-shadowgate-variant": variant}
    r = h.client.post("/v2/models/breast-cancer/infer", json=v2_body([row]), headers=force)
    assert r.status_code == 200, r.text
    assert r.headers["x-shadowgate-model"] == model
    assert r.headers["x-shadowgate-version"] == "1"
    assert r.headers["x-shadowgate-variant"] == variant
    r = h.client.post("/predict", json={"instances": [row]}, headers=force)
    assert r.headers["x-shadowgate-model"] == model == r.json()["model"]
    assert r.headers["x-shadowgate-variant"] == variant == r.json()["variant"]


def test_headers_match_the_body_across_users(h: Harness, row: list[float]) -> None:
    models = set()
    for i in range(40):
        r = h.client.post("/predict", json={"instances": [row]},
                          headers={"x-user-id": f"user-{i}"})
        assert r.headers["x-shadowgate-model"] == r.json()["model"]
        assert r.headers["x-shadowgate-variant"] == r.json()["variant"]
        models.add(r.json()["model"])
    assert models == {"bc-logreg", "bc-gbt"}  # 50% canary: 40 users hit both


def test_no_model_headers_when_no_model_ran(h: Harness, row: list[float]) -> None:
    """A refused request names no model: none answered it (a model that ran and failed is
    named: test_errors.py, the 500 of a failing model)."""
    for path, body in [("/v2/models/bc-rf/infer", {"inputs": []}),
                       ("/v2/models/bc-rf/infer", v2_body([row[:3]])),
                       ("/v2/models/breast-cancer/infer", v2_body([row], name="x"))]:
        r = h.client.post(path, json=body)
        assert r.status_code == 400
        assert "x-shadowgate-model" not in r.headers and "x-shadowgate-version" not in r.headers
        assert r.headers["x-request-id"]


def test_bad_forced_variant_is_400(h: Harness, row: list[float]) -> None:
    r = h.client.post("/v2/models/breast-cancer/infer", json=v2_body([row]),
                      headers={"x-shadowgate-variant": "nonsense"})
    assert r.status_code == 400
    msg = r.json()["error"]
    assert "x-shadowgate-variant" in msg and "'nonsense'" in msg and "canary" in msg


class Unencodable(Fake):
    """Answers with a complex tensor, which has no V2 datatype: an unexpected error."""

    async def infer(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        rows = inputs["input"].shape[0]
        return {"label": np.ones(rows, dtype=np.complex64),
                "probabilities": np.full((rows, 2), 0.5, dtype=np.float32)}


def unencodable(name: str, version: str, options: dict[str, Any]) -> Unencodable:
    return Unencodable(name, version, options)


def test_500_responses_carry_the_request_id(row: list[float]) -> None:
    models = [{"name": "bc-logreg"}, {"name": "odd", "python": f"{__name__}:unencodable"}]
    with harness(config([], models=models)) as fresh:
        r = fresh.client.post("/v2/models/odd/infer", json=v2_body([row]),
                              headers={"x-request-id": "trace-me"})
        assert r.status_code == 500
        assert r.json() == {"error": "internal error: TypeError"}
        assert r.headers.get("x-request-id") == "trace-me"
