"""The access log: logfmt or JSON lines, successes sampled, failures always, values quoted;
through the app (fast path, router path) and gRPC."""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Any

import numpy as np
import orjson
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from gateway.accesslog import AccessLog, install_json_handler, quote
from tests.helpers import config, harness, live_gateway, v2_body

INFER = "/v2/models/breast-cancer/infer"


def capture(mode: Any = "on", sample: float = 1.0, rand: float = 0.0
            ) -> tuple[AccessLog, list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.Logger("test.access", logging.INFO)
    logger.addHandler(Keep())
    return AccessLog(mode, sample, logger=logger, rand=lambda: rand), records


def test_logfmt_line() -> None:
    access, records = capture()
    access.success("http", "POST", INFER, 200, 0.00123456, "abc", "bc-logreg", "1", "champion")
    [record] = records
    assert record.levelno == logging.INFO
    assert record.getMessage() == (f"proto=http method=POST path={INFER} status=200 ms=1.235 "
                                   "request_id=abc model=bc-logreg version=1 variant=champion")


def test_failures_are_always_written_and_quoted() -> None:
    access, records = capture("off")
    assert not access.enabled
    access.failure("http", "POST", '/v2/models/x"\ny/infer', 400, 0.001, "id 1",
                   "bad_request", 'malformed JSON: "\n"', None, None)
    access.failure("grpc", "ModelInfer", "m", 500, 0.002, "r2", "model_error", "boom",
                   "m", "1")
    first, second = records
    assert first.levelno == logging.INFO and second.levelno == logging.ERROR
    line = first.getMessage()
    assert "\n" not in line
    assert 'path="/v2/models/x\\"\\ny/infer"' in line and 'request_id="id 1"' in line
    assert 'code=bad_request error="malformed JSON: \\"\\n\\""' in line
    assert second.getMessage().endswith("model=m version=1 code=model_error error=boom")


def test_json_lines() -> None:
    access, records = capture("json")
    access.success("grpc", "ModelInfer", "breast-cancer", 200, 0.0005, "r1", "bc-gbt", "1",
                   "canary")
    access.failure("http", "POST", INFER, 404, 0.0001, "r2", "not_found", "no \"x\"")
    ok, bad = (orjson.loads(r.getMessage()) for r in records)
    assert ok.pop("ts") > 0
    assert ok == {"proto": "grpc", "method": "ModelInfer", "path": "breast-cancer",
                  "status": 200, "ms": 0.5, "request_id": "r1", "model": "bc-gbt",
                  "version": "1", "variant": "canary"}
    assert (bad["status"], bad["code"], bad["error"]) == (404, "not_found", 'no "x"')
    assert "model" not in bad


def test_sampling_keeps_a_share_of_successes_and_every_failure() -> None:
    access, records = capture("on", sample=0.1, rand=0.5)
    access.success("http", "POST", INFER, 200, 0.001, "a")
    access.failure("http", "POST", INFER, 400, 0.001, "b", "bad_request", "x")
    assert [r.getMessage().split("request_id=")[1][0] for r in records] == ["b"]
    kept, records = capture("on", sample=0.1, rand=0.05)
    kept.success("http", "POST", INFER, 200, 0.001, "a")
    assert len(records) == 1


def test_quote() -> None:
    assert quote("bc-logreg:1/x@y+z") == "bc-logreg:1/x@y+z"
    assert quote("") == '""' and quote("a b") == '"a b"' and quote("é") == '"é"'


def test_install_json_handler_writes_bare_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    logger = logging.getLogger("gateway.access")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "propagate", True)
    monkeypatch.setattr(logger, "level", logging.NOTSET)
    stream = io.StringIO()
    install_json_handler("on", stream)
    assert logger.handlers == []
    install_json_handler("json", stream)
    AccessLog("json").success("http", "GET", "/v2", 200, 0.001, "r")
    assert orjson.loads(stream.getvalue())["path"] == "/v2"
    assert logger.propagate is False


def test_the_app_writes_a_line_per_request(caplog: pytest.LogCaptureFixture,
                                           holdout: list[dict[str, Any]]) -> None:
    row = holdout[0]["features"]
    with harness(config(), access_log="on") as h, \
            caplog.at_level(logging.INFO, logger="gateway.access"):
        h.client.post(INFER, json=v2_body([row]), headers={"x-request-id": "ok-1"})
        h.client.post(INFER, json=v2_body([row[:3]]), headers={"x-request-id": "bad-1"})
        h.client.get("/v2/models/ghost", headers={"x-request-id": "meta-1"})
        h.client.get("/v2/health/live", headers={"x-request-id": "live-1"})
    lines = {line.split("request_id=")[1].split()[0]: line
             for line in (r.getMessage() for r in caplog.records if r.name == "gateway.access")}
    assert "status=200" in lines["ok-1"] and "model=bc-logreg version=1 variant=champion" in \
        lines["ok-1"]
    assert "status=400" in lines["bad-1"] and "code=invalid_input" in lines["bad-1"]
    assert "model=" not in lines["bad-1"]  # no model ran
    assert "path=/v2/models/ghost status=404" in lines["meta-1"]
    assert "code=not_found" in lines["meta-1"]
    assert "method=GET path=/v2/health/live status=200" in lines["live-1"]


def test_grpc_requests_are_logged_too(caplog: pytest.LogCaptureFixture) -> None:
    x = np.zeros((1, 30), dtype=np.float32)
    with live_gateway(config(), access_log="json") as gw, \
            contextlib.closing(triton.InferenceServerClient(gw.grpc)) as client, \
            caplog.at_level(logging.INFO, logger="gateway.access"):
        inp = triton.InferInput("input", [1, 30], "FP32")
        inp.set_data_from_numpy(x)
        client.infer("breast-cancer", [inp], headers={"x-request-id": "g-1"})
        bad = triton.InferInput("input", [1, 2], "FP32")
        bad.set_data_from_numpy(x[:, :2])
        with pytest.raises(InferenceServerException):
            client.infer("breast-cancer", [bad], headers={"x-request-id": "g-2"})
    lines = {line["request_id"]: line for line in (
        orjson.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.access")}
    assert (lines["g-1"]["proto"], lines["g-1"]["method"], lines["g-1"]["status"],
            lines["g-1"]["model"]) == ("grpc", "ModelInfer", 200, "bc-logreg")
    assert (lines["g-2"]["status"], lines["g-2"]["code"]) == (400, "invalid_input")
