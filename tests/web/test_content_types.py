"""Content types as real V2 clients send them: JSON under no type, application/json, +json
and application/octet-stream (JSON unless the binary header frames it); others 415."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest

from gateway.errors import UnsupportedMediaType
from gateway.protocol.binary import tensor_bytes
from gateway.web.http import check_media_type
from tests.helpers import Harness, config, harness, v2_body
from tests.protocol.samples import raises

ACCEPTED = [None, b"application/json", b"application/json; charset=utf-8",
            b"Application/JSON", b"application/vnd.api+json", b"application/octet-stream",
            b"application/octet-stream; x=1"]
REFUSED = [b"text/plain", b"application/x-www-form-urlencoded", b"multipart/form-data",
           b"application/xml", b"", b"json"]


@pytest.mark.parametrize("value", ACCEPTED)
def test_accepted_for_inference(value: bytes | None) -> None:
    check_media_type(value, octets=True)


@pytest.mark.parametrize("value", REFUSED)
def test_refused_with_a_clear_message(value: bytes) -> None:
    with raises(UnsupportedMediaType, "content-type: expected application/json (or "
                "application/octet-stream for the binary tensor data extension)",
                repr(value.decode())):
        check_media_type(value, octets=True)


def test_octet_stream_is_for_inference_only() -> None:
    with raises(UnsupportedMediaType, "expected application/json, got "
                "'application/octet-stream'"):
        check_media_type(b"application/octet-stream")


@pytest.fixture(scope="module")
def h() -> Iterator[Harness]:
    with harness(config()) as running:
        yield running


@pytest.mark.parametrize("value", [v for v in ACCEPTED if v is not None])
@pytest.mark.parametrize("path", ["/v2/models/breast-cancer/infer", "/predict"])
def test_json_bodies_under_every_accepted_type(h: Harness, row: list[float], path: str,
                                               value: bytes) -> None:
    body = v2_body([row]) if path.startswith("/v2") else {"instances": [row]}
    r = h.client.post(path, content=orjson.dumps(body),
                      headers={"content-type": value.decode()})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"


def test_binary_framing_under_any_accepted_type(h: Harness, row: list[float]) -> None:
    raw = tensor_bytes(np.asarray([row], dtype=np.float32))
    head = orjson.dumps({"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw)}}]})
    for value in (None, "application/json", "application/octet-stream"):
        headers = {"inference-header-content-length": str(len(head))}
        if value is not None:
            headers["content-type"] = value
        r = h.client.post("/v2/models/breast-cancer/infer", content=head + raw,
                          headers=headers)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"  # no output asked binary


@pytest.mark.parametrize("value", REFUSED[:3])
def test_415_on_the_wire(h: Harness, row: list[float], value: bytes) -> None:
    r = h.client.post("/v2/models/breast-cancer/infer", content=orjson.dumps(v2_body([row])),
                      headers={"content-type": value.decode()})
    assert r.status_code == 415
    assert "application/octet-stream for the binary tensor data extension" in \
        r.json()["error"]


@pytest.fixture(scope="module")
def row(holdout: list[dict[str, Any]]) -> list[float]:
    return holdout[0]["features"]
