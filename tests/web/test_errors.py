"""Every bad request is a 4xx with {"error": msg} naming the field, what was expected, what came."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from tests.helpers import Harness, config, harness, v2_body

INFER = "/v2/models/bc-logreg/infer"
LIMIT = 2048


@pytest.fixture(scope="module")
def h() -> Iterator[Harness]:
    with harness(config(), max_body_bytes=LIMIT) as running:
        yield running


@pytest.fixture(scope="module")
def row(holdout: list[dict[str, Any]]) -> list[float]:
    return holdout[0]["features"]


def error_of(r: Any, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert list(body) == ["error"]
    assert isinstance(body["error"], str) and body["error"]
    return str(body["error"])


def edit(row: list[float], change: Callable[[dict[str, Any]], None]) -> bytes:
    body = v2_body([row])
    change(body)
    return orjson.dumps(body)


def tensor(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        body["inputs"][0].update(fields)
    return change


# (case id, path, body maker, status, words the message must contain)
CASES: list[tuple[str, str, Callable[[list[float]], bytes], int, tuple[str, ...]]] = [
    ("malformed-json", INFER, lambda r: b'{"inputs": [', 400, ("malformed JSON",)),
    ("trailing-garbage", INFER, lambda r: orjson.dumps(v2_body([r])) + b"}", 400,
     ("malformed JSON",)),
    ("body-is-array", INFER, lambda r: b"[1, 2]", 400, ("expected a JSON object", "list")),
    ("body-is-string", INFER, lambda r: b'"hi"', 400, ("expected a JSON object", "str")),
    ("body-is-null", INFER, lambda r: b"null", 400, ("expected a JSON object", "null")),
    ("empty-body", INFER, lambda r: b"", 400, ("empty", "JSON object")),
    ("unknown-top-level-key", INFER, lambda r: edit(r, lambda b: b.update(inptus=[])), 400,
     ("unknown field", "inptus")),
    ("no-inputs", INFER, lambda r: b"{}", 400, ("inputs", "non-empty array", "null")),
    ("empty-inputs", INFER, lambda r: b'{"inputs": []}', 400, ("inputs", "empty array")),
    ("id-not-string", INFER, lambda r: edit(r, lambda b: b.update(id=7)), 400,
     ("id", "string", "int")),
    ("parameters-not-object", INFER, lambda r: edit(r, lambda b: b.update(parameters=[1])), 400,
     ("parameters", "object", "list")),
    ("outputs-not-array", INFER, lambda r: edit(r, lambda b: b.update(outputs="label")), 400,
     ("outputs", "array", "str")),
    ("wrong-input-name", INFER, lambda r: edit(r, tensor(name="features")), 400,
     ("missing input", "'input'", "unknown input", "'features'")),
    ("missing-input-name", INFER, lambda r: edit(r, lambda b: b["inputs"][0].pop("name")), 400,
     ("inputs[0].name", "non-empty string")),
    ("missing-datatype", INFER, lambda r: edit(r, lambda b: b["inputs"][0].pop("datatype")),
     400, ("datatype", "FP32", "None")),
    ("missing-shape", INFER, lambda r: edit(r, lambda b: b["inputs"][0].pop("shape")), 400,
     ("shape", "non-negative integers", "None")),
    ("missing-data", INFER, lambda r: edit(r, lambda b: b["inputs"][0].pop("data")), 400,
     ("data", "missing")),
    ("extra-input", INFER, lambda r: edit(r, lambda b: b["inputs"].append(
        {"name": "extra", "shape": [1], "datatype": "FP32", "data": [1.0]})), 400,
     ("unknown input", "'extra'")),
    ("duplicate-input", INFER, lambda r: edit(r, lambda b: b["inputs"].append(
        copy.deepcopy(b["inputs"][0]))), 400, ("'input'", "twice")),
    ("unknown-tensor-key", INFER, lambda r: edit(r, tensor(contents={})), 400,
     ("inputs[0]", "unknown field", "contents")),
    ("wrong-datatype", INFER, lambda r: edit(r, tensor(datatype="FP64")), 400,
     ("datatype", "expects FP32", "got FP64")),
    ("unknown-datatype", INFER, lambda r: edit(r, tensor(datatype="FLOAT")), 400,
     ("datatype", "FP32", "'FLOAT'")),
    ("shape-rank", INFER, lambda r: edit(r, tensor(shape=[30], data=r)), 400,
     ("shape", "[-1, 30]", "[30]")),
    ("shape-width", INFER, lambda r: edit(r, tensor(shape=[3, 10], data=r)), 400,
     ("shape", "[-1, 30]", "[3, 10]")),
    ("nested-vs-shape", INFER, lambda r: edit(r, tensor(shape=[3, 10])), 400,
     ("nested", "[1, 30]", "[3, 10]", "flat")),
    ("shape-negative", INFER, lambda r: edit(r, tensor(shape=[-1, 30])), 400,
     ("shape", "non-negative integers", "[-1, 30]")),
    ("shape-float", INFER, lambda r: edit(r, tensor(shape=[1.0, 30])), 400,
     ("shape", "non-negative integers")),
    ("element-count", INFER, lambda r: edit(r, tensor(shape=[2, 30])), 400,
     ("shape [2, 30]", "60 elements", "got 30")),
    ("ragged", INFER, lambda r: edit(r, tensor(shape=[2, 30], data=[r, r[:29]])), 400,
     ("ragged", "[2, 30]")),
    ("strings-in-fp32", INFER, lambda r: edit(r, tensor(data=[[str(v) for v in r]])), 400,
     ("data", "FP32", "strings")),
    ("nulls-in-fp32", INFER, lambda r: edit(r, tensor(data=[[None, *r[1:]]])), 400,
     ("data", "FP32")),
    ("data-not-array", INFER, lambda r: edit(r, tensor(data={"a": 1})), 400,
     ("data", "JSON array", "dict")),
    ("json-infinity", INFER,
     lambda r: orjson.dumps(v2_body([r])).replace(b"12.75", b"1e999", 1), 400,
     ("infinity",)),
    ("json-nan-literal", INFER,
     lambda r: orjson.dumps(v2_body([r])).replace(b"12.75", b"NaN", 1), 400,
     ("malformed JSON",)),
    ("zero-rows", INFER, lambda r: edit(r, tensor(shape=[0, 30], data=[])), 400,
     ("first dimension is 0", "at least one row")),
    ("unknown-model", "/v2/models/nope/infer", lambda r: orjson.dumps(v2_body([r])), 404,
     ("'nope'", "not found", "breast-cancer", "bc-logreg")),
    ("unknown-version", "/v2/models/bc-logreg/versions/7/infer",
     lambda r: orjson.dumps(v2_body([r])), 404, ("'bc-logreg'", "no version", "'7'", "'1'")),
    ("version-on-deployment", "/v2/models/breast-cancer/versions/1/infer",
     lambda r: orjson.dumps(v2_body([r])), 404,
     ("'breast-cancer'", "deployment", "/v2/models/bc-logreg/versions/1")),
]


@pytest.mark.parametrize(("path", "make", "status", "words"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_request_is_explained(h: Harness, row: list[float], path: str,
                                  make: Callable[[list[float]], bytes], status: int,
                                  words: tuple[str, ...]) -> None:
    r = h.client.post(path, content=make(row), headers={"content-type": "application/json"})
    msg = error_of(r, status)
    for word in words:
        assert word in msg, (word, msg)


def test_the_row_in_the_case_table_is_the_one_edited(row: list[float]) -> None:
    """The 1e999 / NaN cases replace the first feature of holdout row 0 in the raw JSON."""
    assert orjson.dumps(v2_body([row])).count(b"12.75") == 1


def test_the_same_errors_on_a_deployment(h: Harness, row: list[float]) -> None:
    r = h.client.post("/v2/models/breast-cancer/infer",
                      content=edit(row, tensor(datatype="FP64")))
    msg = error_of(r, 400)
    assert "expects FP32" in msg and "FP64" in msg
    assert "x-shadowgate-model" not in r.headers  # refused: no model ran


def test_non_finite_after_float32_conversion_is_rejected(h: Harness) -> None:
    """3e38 fits FP32; values are checked after conversion, so the model never sees inf."""
    r = h.client.post(INFER, json=v2_body([[3e38] * 30]))
    assert r.status_code == 200, r.text


def test_value_outside_fp32_range_is_400(h: Harness) -> None:
    """Regression: the cast to float32 overflowed with a numpy RuntimeWarning (a 500)."""
    r = h.client.post(INFER, json=v2_body([[1e39] * 30]))
    msg = error_of(r, 400)
    assert "inputs[0]" in msg and "out of range" in msg and "FP32" in msg


def test_an_empty_tensor_with_a_huge_dimension_is_400(h: Harness) -> None:
    """Regression (found by the OpenAPI fuzz): numpy cannot reshape [] to [0, 2**62], which
    was a ValueError, a 500."""
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [0, 2**62], "data": []}]}
    msg = error_of(h.client.post(INFER, json=body), 400)
    assert "shape [0, 4611686018427387904] is too large" in msg


@pytest.mark.parametrize("rank", [33, 65])
def test_shape_of_absurd_rank_is_400(h: Harness, rank: int) -> None:
    """Regression: numpy cannot reshape past 64 dimensions (was a ValueError, a 500)."""
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1] * rank,
                        "data": [1.0]}]}
    msg = error_of(h.client.post(INFER, json=body), 400)
    assert "shape" in msg and "at most" in msg


def test_nested_data_of_another_rank_is_400(h: Harness, row: list[float]) -> None:
    body = v2_body([row])
    body["inputs"][0]["data"] = [[[v] for v in row]]  # [1, 30, 1] nested, shape [1, 30]
    msg = error_of(h.client.post(INFER, json=body), 400)
    assert "nested" in msg and "[1, 30, 1]" in msg and "[1, 30]" in msg


def test_nested_data_must_match_the_shape(h: Harness, row: list[float]) -> None:
    """Regression: a [30, 1] column was reshaped to [1, 30] and served."""
    body = v2_body([row])
    body["inputs"][0]["data"] = [[v] for v in row]  # [30, 1] nested, shape says [1, 30]
    msg = error_of(h.client.post(INFER, json=body), 400)
    assert "nested" in msg and "[30, 1]" in msg and "[1, 30]" in msg


def test_wrong_content_type_is_415(h: Harness, row: list[float]) -> None:
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        r = h.client.post(INFER, content=orjson.dumps(v2_body([row])),
                          headers={"content-type": ctype})
        msg = error_of(r, 415)
        assert "content-type" in msg and "application/json" in msg and ctype in msg


def test_body_over_the_limit_is_413(h: Harness, row: list[float]) -> None:
    payload = orjson.dumps(v2_body([row] * 20))
    assert len(payload) > LIMIT
    msg = error_of(h.client.post(INFER, content=payload,
                                 headers={"content-type": "application/json"}), 413)
    assert str(len(payload)) in msg and str(LIMIT) in msg


def test_chunked_body_over_the_limit_is_413(h: Harness, row: list[float]) -> None:
    piece = orjson.dumps(v2_body([row]))

    def chunks() -> Iterator[bytes]:
        for _ in range(50):
            yield piece

    r = h.client.post(INFER, content=chunks(), headers={"content-type": "application/json"})
    msg = error_of(r, 413)
    # "more than": the streamed path, which cannot know the size up front
    assert "more than" in msg and str(LIMIT) in msg


def test_body_just_under_the_limit_is_served(h: Harness, row: list[float]) -> None:
    payload = orjson.dumps(v2_body([row]))
    assert len(payload) < LIMIT
    r = h.client.post(INFER, content=payload, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text


def test_chunked_body_under_the_limit_is_served(h: Harness, row: list[float]) -> None:
    payload = orjson.dumps(v2_body([row]))

    def chunks() -> Iterator[bytes]:
        yield payload[:100]
        yield payload[100:]

    r = h.client.post(INFER, content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text


def test_bad_content_length_is_400(h: Harness, row: list[float]) -> None:
    r = h.client.post(INFER, content=orjson.dumps(v2_body([row])),
                      headers={"content-type": "application/json", "content-length": "abc"})
    msg = error_of(r, 400)
    assert "content-length" in msg and "'abc'" in msg


def test_unknown_route_is_404_json(h: Harness) -> None:
    for method, path in (("GET", "/nope"), ("POST", "/v2/models"), ("GET", "/v2/models/")):
        msg = error_of(h.client.request(method, path), 404)
        assert method in msg and path in msg


def test_wrong_method_is_405_json(h: Harness) -> None:
    for method, path in (("GET", INFER), ("PUT", "/predict"), ("POST", "/v2"),
                         ("DELETE", "/v2/models/bc-logreg")):
        r = h.client.request(method, path)
        msg = error_of(r, 405)
        assert method in msg and path in msg
        assert "allow" in r.headers


def test_errors_are_counted_per_reason(row: list[float]) -> None:
    with harness(config(), max_body_bytes=LIMIT) as fresh:
        c = fresh.client
        c.post(INFER, content=b"{")
        c.post(INFER, content=edit(row, tensor(datatype="FP64")))
        c.post(INFER, content=edit(row, tensor(datatype="FP64")))
        c.post(INFER, content=b"x", headers={"content-type": "text/plain"})
        c.post(INFER, content=orjson.dumps(v2_body([row] * 20)))
        c.post("/v2/models/nope/infer", content=b"{}")

        def failures(reason: str) -> float:
            return fresh.metric("model_infer_request_failure_total", model_name="bc-logreg",
                                model_version="1", reason=reason)

        assert failures("bad_request") == 1
        assert failures("invalid_input") == 2
        assert failures("unsupported_media_type") == 1
        assert failures("payload_too_large") == 1
        assert fresh.metric("model_infer_request_success_total", model_name="bc-logreg",
                            model_version="1") == 0


def test_a_failing_model_is_a_500_json_with_the_request_id(row: list[float]) -> None:
    models = [{"name": "bc-logreg"},
              {"name": "flaky", "python": "tests.backends:fake", "options": {"fail": True}}]
    with harness(config([], models=models)) as fresh:
        r = fresh.client.post("/v2/models/flaky/infer", json=v2_body([row]),
                              headers={"x-request-id": "boom-1"})
        msg = error_of(r, 500)
        assert "flaky:1 failed" in msg and "RuntimeError" in msg and "always fails" in msg
        assert r.headers["x-request-id"] == "boom-1"
        assert r.headers["x-shadowgate-model"] == "flaky"
        assert fresh.metric("model_infer_request_failure_total", model_name="flaky",
                            model_version="1", reason="model_error") == 1
        assert fresh.metric("model_infer_request_success_total", model_name="flaky",
                            model_version="1") == 0


def test_a_refused_request_leaves_no_record_and_is_counted_once(row: list[float]) -> None:
    # An unknown name in `outputs` is refused before the model runs: no paired record that
    # says "served, ok" for a request the caller saw fail.
    with harness(config()) as fresh:
        r = fresh.client.post("/v2/models/breast-cancer/infer",
                              json=v2_body([row], outputs=[{"name": "nope"}]))
        msg = error_of(r, 400)
        assert "outputs" in msg and "'nope'" in msg and "label" in msg
        ok = fresh.client.post("/v2/models/breast-cancer/infer", json=v2_body([row]))
        assert ok.status_code == 200
        fresh.wait_records(1)
        assert len(fresh.sink.records) == 1
        assert fresh.metric("model_infer_request_failure_total", model_name="bc-logreg",
                            model_version="1", reason="bad_request") == 1


def test_fast_path_errors_are_logged_quoted(row: list[float],
                                            caplog: pytest.LogCaptureFixture) -> None:
    """Every failed inference request gets an access line, access log on or off, with its
    status, error code and request id; what the caller sent is quoted."""
    with harness(config()) as fresh, caplog.at_level(logging.INFO, logger="gateway.access"):
        fresh.client.post(INFER, content=b'{"inputs": [], "x\\ny": 1}',
                          headers={"x-request-id": "bad-1"})
        fresh.client.post("/v2/models/nope/infer", content=b"{}")
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.access"]
    assert any("status=400" in line and f"path={INFER}" in line and "request_id=bad-1" in line
               and "code=bad_request" in line for line in lines), lines
    assert any("status=404" in line and "nope" in line and "code=not_found" in line
               for line in lines), lines
    assert all("\n" not in line for line in lines)


DEPLOYMENT_INFER = "/v2/models/breast-cancer/infer"


def test_no_refusal_path_leaves_a_record(row: list[float]) -> None:
    """Every 4xx on a deployment (each bad body above, media type, size, a bad forced
    variant, outputs): no paired record saying "served, ok" for a request that failed."""
    deployments = [{"name": "breast-cancer", "champion": "bc-logreg",
                    "shadows": [{"model": "bc-gbt"}],
                    "canaries": [{"model": "bc-rf", "weight": 10}],
                    "routing": {"allow_force": True}}]
    with harness(config(deployments), max_body_bytes=LIMIT) as fresh:
        refused = 0
        for case, path, make, status, _ in CASES:
            if path != INFER:
                continue
            r = fresh.client.post(DEPLOYMENT_INFER, content=make(row),
                                  headers={"content-type": "application/json"})
            assert r.status_code == status, (case, r.text)
            refused += 1
        for content, headers in [
            (orjson.dumps(v2_body([row])), {"content-type": "text/plain"}),
            (orjson.dumps(v2_body([row] * 20)), {}),
            (orjson.dumps(v2_body([row])), {"x-shadowgate-variant": "nonsense"}),
            (orjson.dumps(v2_body([row], outputs=[{"name": "nope"}])), {}),
        ]:
            r = fresh.client.post(DEPLOYMENT_INFER, content=content, headers=headers)
            assert 400 <= r.status_code < 500, r.text
            refused += 1
        r = fresh.client.post("/predict", json={"instances": [row[:5]]})
        assert r.status_code == 400
        assert refused > 30
        ok = fresh.client.post(DEPLOYMENT_INFER, json=v2_body([row]))
        assert ok.status_code == 200
        fresh.wait_records(1)  # the one served request's record, shadows included
        assert [rec["request_id"] for rec in fresh.sink.records] == [ok.headers["x-request-id"]]


def test_a_model_failing_on_valid_input_is_still_recorded(row: list[float]) -> None:
    # A refusal of bad input leaves no record, but a deployment's model failing on valid
    # input does: the record says so, and the comparison counts it as that model's error.
    models = [{"name": "bc-logreg"},
              {"name": "flaky", "python": "tests.backends:fake", "options": {"fail": True}}]
    with harness(config([{"name": "d", "champion": "flaky", "shadows": [{"model": "bc-logreg"}]}],
                        models=models)) as fresh:
        r = fresh.client.post("/v2/models/d/infer", json=v2_body([row]),
                              headers={"x-request-id": "fails-1"})
        error_of(r, 500)
        fresh.wait_records(1)
        [record] = fresh.sink.records
        served, shadow = record["predictions"]
        assert record["request_id"] == "fails-1"
        assert (served["model"], served["served"], served["status"]) == ("flaky", True, "error")
        assert "always fails" in served["error"] and served["output"] is None
        assert shadow["status"] == "ok"  # the shadow still ran
