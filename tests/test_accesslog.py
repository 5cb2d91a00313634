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

from gateway.accesslog import AccessLog, quote
from tests.helpers import apoll, config, harness, live_gateway, v2_body

INFER = "/v2/models/breast-cancer/infer"


def capture(mode: Any = "on", sample: float = 1.0, rand: float = 0.0
            ) -> tuple[AccessLog, io.StringIO, list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.Logger("test.access", logging.INFO)
    logger.addHandler(Keep())
    stream = io.StringIO()
    access = AccessLog(mode, sample, stream=stream, logger=logger, rand=lambda: rand,
                       clock=lambda: 1764527881.25)
    return access, stream, records


def test_logfmt_line() -> None:
    access, stream, records = capture()
    access.success("http", "POST", INFER, 200, 0.00123456, "abc", "bc-logreg", "1", "champion")
    assert stream.getvalue() == (
        f"ts=2025-11-30T18:38:01.250Z proto=http method=POST path={INFER} status=200 "
        "ms=1.235 request_id=abc model=bc-logreg version=1 variant=champion\n")
    assert records == []


def test_failures_are_always_written_and_quoted() -> None:
    access, stream, records = capture("off")
    assert not access.enabled
    access.failure("http", "POST", '/v2/models/x"\ny/infer', 400, 0.001, "id 1",
                   "bad_request", 'malformed JSON: "\n"', None, None)
    access.failure("grpc", "ModelInfer", "m", 500, 0.002, "r2", "model_error", "boom",
                   "m", "1")
    assert stream.getvalue() == ""  # off: through logging, with the other messages
    first, second = records
    assert first.levelno == logging.INFO and second.levelno == logging.ERROR
    line = first.getMessage()
    assert "\n" not in line and line.startswith("proto=http method=POST ")
    assert 'path="/v2/models/x\\"\\ny/infer"' in line and 'request_id="id 1"' in line
    assert 'code=bad_request error="malformed JSON: \\"\\n\\""' in line
    assert second.getMessage().endswith("model=m version=1 code=model_error error=boom")


def test_json_lines() -> None:
    access, stream, _ = capture("json")
    access.success("grpc", "ModelInfer", "breast-cancer", 200, 0.0005, "r1", "bc-gbt", "1",
                   "canary")
    access.failure("http", "POST", INFER, 404, 0.0001, "r2", "not_found", "no \"x\"")
    ok, bad = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert ok == {"ts": 1764527881.25, "proto": "grpc", "method": "ModelInfer",
                  "path": "breast-cancer", "status": 200, "ms": 0.5, "request_id": "r1",
                  "model": "bc-gbt", "version": "1", "variant": "canary"}
    assert (bad["status"], bad["code"], bad["error"]) == (404, "not_found", 'no "x"')
    assert "model" not in bad


def test_sampling_keeps_a_share_of_successes_and_every_failure() -> None:
    access, stream, _ = capture("on", sample=0.1, rand=0.5)
    access.success("http", "POST", INFER, 200, 0.001, "a")
    access.failure("http", "POST", INFER, 400, 0.001, "b", "bad_request", "x")
    assert [line.split("request_id=")[1][0] for line in stream.getvalue().splitlines()] == ["b"]
    kept, stream, _ = capture("on", sample=0.1, rand=0.05)
    kept.success("http", "POST", INFER, 200, 0.001, "a")
    assert len(stream.getvalue().splitlines()) == 1


async def test_lines_are_written_in_batches() -> None:
    stream = io.StringIO()
    access = AccessLog("on", stream=stream)
    access.success("http", "GET", "/v2", 200, 0.001, "a")
    access.success("http", "GET", "/v2", 200, 0.001, "b")
    assert stream.getvalue() == ""  # waiting for the next flush (at most FLUSH_S)
    await apoll(lambda: len(stream.getvalue().splitlines()) == 2, what="the timed flush")
    for i in range(AccessLog.MAX_LINES):
        access.success("http", "GET", "/v2", 200, 0.001, str(i))
    assert len(stream.getvalue().splitlines()) == 2 + AccessLog.MAX_LINES  # a full batch
    access.success("http", "GET", "/v2", 200, 0.001, "c")
    access.failure("http", "POST", INFER, 502, 0.001, "d", "bad_gateway", "remote down")
    assert stream.getvalue().splitlines()[-1].endswith('error="remote down"')  # 5xx: at once


def test_quote() -> None:
    assert quote("bc-logreg:1/x@y+z") == "bc-logreg:1/x@y+z"
    assert quote("") == '""' and quote("a b") == '"a b"' and quote("é") == '"é"'


def test_the_app_writes_a_line_per_request(capsys: pytest.CaptureFixture[str],
                                           holdout: list[dict[str, Any]]) -> None:
    row = holdout[0]["features"]
    with harness(config(), access_log="on") as h:
        h.client.post(INFER, json=v2_body([row]), headers={"x-request-id": "ok-1"})
        h.client.post(INFER, json=v2_body([row[:3]]), headers={"x-request-id": "bad-1"})
        h.client.get("/v2/models/ghost", headers={"x-request-id": "meta-1"})
        h.client.get("/v2/health/live", headers={"x-request-id": "live-1"})
    # the lifespan flushed what was waiting
    lines = {line.split("request_id=")[1].split()[0]: line
             for line in capsys.readouterr().err.splitlines() if "request_id=" in line}
    assert "status=200" in lines["ok-1"] and "model=bc-logreg version=1 variant=champion" in \
        lines["ok-1"]
    assert "status=400" in lines["bad-1"] and "code=invalid_input" in lines["bad-1"]
    assert "model=" not in lines["bad-1"]  # no model ran
    assert "path=/v2/models/ghost status=404" in lines["meta-1"]
    assert "code=not_found" in lines["meta-1"]
    assert "method=GET path=/v2/health/live status=200" in lines["live-1"]


def test_grpc_requests_are_logged_too(capsys: pytest.CaptureFixture[str]) -> None:
    x = np.zeros((1, 30), dtype=np.float32)
    with live_gateway(config(), access_log="json") as gw, \
            contextlib.closing(triton.InferenceServerClient(gw.grpc)) as client:
        inp = triton.InferInput("input", [1, 30], "FP32")
        inp.set_data_from_numpy(x)
        client.infer("breast-cancer", [inp], headers={"x-request-id": "g-1"})
        bad = triton.InferInput("input", [1, 2], "FP32")
        bad.set_data_from_numpy(x[:, :2])
        with pytest.raises(InferenceServerException):
            client.infer("breast-cancer", [bad], headers={"x-request-id": "g-2"})
    lines = {line["request_id"]: line for line in (
        orjson.loads(text) for text in capsys.readouterr().err.splitlines()
        if text.startswith('{"ts":'))}
    assert (lines["g-1"]["proto"], lines["g-1"]["method"], lines["g-1"]["status"],
            lines["g-1"]["model"]) == ("grpc", "ModelInfer", 200, "bc-logreg")
    assert (lines["g-2"]["status"], lines["g-2"]["code"]) == (400, "invalid_input")
