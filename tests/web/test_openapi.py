"""/openapi.json: OpenAPI 3.1 shape, every served route listed, every $ref resolvable."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.routing import Route

from gateway import __version__
from tests.helpers import Harness, config, harness

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def h() -> Iterator[Harness]:
    with harness(config()) as running:
        yield running


@pytest.fixture(scope="module")
def doc(h: Harness) -> dict[str, Any]:
    r = h.client.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body: dict[str, Any] = r.json()
    return body


def served(h: Harness) -> dict[str, set[str]]:
    """path -> methods, from the app's own routing table."""
    out: dict[str, set[str]] = {}
    for route in h.app.routes:
        assert isinstance(route, Route)
        out.setdefault(route.path, set()).update(m.lower() for m in route.methods or ())
    return out


def test_top_level_shape(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1.")
    assert doc["info"]["title"] == "Shadowgate"
    assert doc["info"]["version"] == __version__
    assert isinstance(doc["paths"], dict) and doc["paths"]
    assert isinstance(doc["components"]["schemas"], dict)


def test_every_served_route_is_documented(h: Harness, doc: dict[str, Any]) -> None:
    """Regression: POST /feedback was served but not documented."""
    assert set(served(h)) - set(doc["paths"]) == set()


def test_every_documented_route_is_served_with_its_methods(h: Harness,
                                                           doc: dict[str, Any]) -> None:
    routes = served(h)
    assert set(doc["paths"]) <= set(routes)
    for path, item in doc["paths"].items():
        documented = set(item) & HTTP_METHODS
        assert documented, path
        assert documented <= routes[path], (path, documented, routes[path])
        assert routes[path] - {"head"} <= documented, (path, routes[path])


def test_operations_are_well_formed(doc: dict[str, Any]) -> None:
    for path, item in doc["paths"].items():
        assert path.startswith("/")
        templated = set(re.findall(r"{(\w+)}", path))
        declared = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
        assert templated == declared, path
        for p in item.get("parameters", []):
            assert "schema" in p and (p["in"] != "path" or p["required"] is True)
        for method, op in item.items():
            if method not in HTTP_METHODS:
                continue
            assert op["summary"]
            assert "200" in op["responses"]
            for code, response in op["responses"].items():
                assert re.fullmatch(r"[1-5]\d\d", code), (path, code)
                assert response["description"]
            if method == "post" and path != "/admin/reload":  # reload takes no body
                assert op["requestBody"]["required"] is True
                assert "application/json" in op["requestBody"]["content"]


def test_every_ref_resolves(doc: dict[str, Any]) -> None:
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    refs.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"], ref


def test_inference_errors_are_documented(doc: dict[str, Any]) -> None:
    infer = doc["paths"]["/v2/models/{name}/infer"]["post"]["responses"]
    assert {"400", "404", "413", "415"} <= set(infer)
    predict = doc["paths"]["/predict"]["post"]["responses"]
    assert {"400", "404", "413", "415"} <= set(predict)
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]


def test_tensor_datatypes_listed(doc: dict[str, Any]) -> None:
    tensor = doc["components"]["schemas"]["InferRequest"]["properties"]["inputs"]["items"]
    assert set(tensor["properties"]["datatype"]["enum"]) == {
        "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
        "FP16", "FP32", "FP64", "BYTES"}


def test_the_document_states_what_the_server_enforces(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    infer = schemas["InferRequest"]
    assert infer["additionalProperties"] is False
    tensor = infer["properties"]["inputs"]["items"]
    assert tensor["additionalProperties"] is False
    assert tensor["properties"]["name"]["minLength"] == 1
    assert schemas["PredictRequest"]["additionalProperties"] is False
    item = schemas["FeedbackItem"]
    assert item["additionalProperties"] is False
    assert set(item["properties"]) == {"request_id", "id", "label", "outcomes", "correction",
                                       "deployment", "ts"}
    assert item["properties"]["request_id"]["minLength"] == 1
    assert item["properties"]["deployment"]["enum"] == ["breast-cancer"]
    label = item["properties"]["label"]["anyOf"]
    assert label[0] == {"type": "string", "enum": ["benign", "malignant"]}
    assert (label[1]["minimum"], label[1]["maximum"]) == (0, 1)
    assert doc["paths"]["/v2/models/{name}/infer"]["parameters"][0]["schema"]["minLength"] == 1


def test_security_per_operation_follows_the_tokens(doc: dict[str, Any]) -> None:
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": doc["components"][
            "securitySchemes"]["bearer"]["description"]}
    # The harness listens on loopback with no token: feedback and inference are open.
    assert doc["paths"]["/feedback"]["post"]["security"] == []
    assert doc["paths"]["/predict"]["post"]["security"] == []
    with harness(config(), feedback_token="f" * 20, inference_token="i" * 20) as guarded:
        paths = guarded.client.get("/openapi.json").json()["paths"]
    assert paths["/feedback"]["post"]["security"] == [{"bearer": ["feedback"]}]
    assert {"401", "403", "429"} <= set(paths["/feedback"]["post"]["responses"])
    for path in ("/predict", "/v2/models/{name}/infer", "/v2/models/{name}"):
        op = paths[path].get("post") or paths[path]["get"]
        assert op["security"] == [{"bearer": ["inference"]}], path
    for path in ("/v2/health/ready", "/metrics", "/openapi.json"):
        assert paths[path]["get"]["security"] == [], path
