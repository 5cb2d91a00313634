"""gateway/grpc/server.py: V2 gRPC in the gateway's process, through Triton's own clients
(tritonclient.grpc and its aio client, with their defaults), on a deployment with two
shadows and on a concrete model."""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Iterator
from typing import Any, cast

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
import tritonclient.grpc.aio as triton_aio
from google.protobuf import json_format
from tritonclient.utils import InferenceServerException

from gateway import __version__
from gateway.grpc import grpc_service_pb2_grpc as pb_grpc
from gateway.grpc import model_config_pb2 as mc
from gateway.grpc.convert import encode_infer_request
from gateway.grpc.server import start_server
from gateway.protocol.tensors import InferenceRequest
from gateway.runtime import Runtime
from tests.helpers import (
    LiveGateway,
    config,
    free_port,
    live_gateway,
    onnx_direct,
    poll,
    v2_body,
)

DEPLOYMENTS = [{"name": "breast-cancer", "champion": "bc-logreg",
                "shadows": [{"model": "bc-gbt"}, {"model": "bc-rf"}]}]


@pytest.fixture(scope="module")
def gw() -> Iterator[LiveGateway]:
    with live_gateway(config(DEPLOYMENTS)) as running:
        yield running


@pytest.fixture(scope="module")
def x(holdout: list[dict[str, Any]]) -> np.ndarray[Any, Any]:
    return np.array([r["features"] for r in holdout[:5]], dtype=np.float32)


@pytest.fixture
def client(gw: LiveGateway) -> Iterator[triton.InferenceServerClient]:
    with contextlib.closing(triton.InferenceServerClient(gw.grpc)) as c:
        yield c


def tensor(x: np.ndarray[Any, Any], name: str = "input", datatype: str = "FP32"
           ) -> triton.InferInput:
    inp = triton.InferInput(name, list(x.shape), datatype)
    inp.set_data_from_numpy(x)
    return inp


def test_infer_on_the_deployment_equals_onnxruntime(client: triton.InferenceServerClient,
                                                    x: np.ndarray[Any, Any]) -> None:
    want = onnx_direct("bc-logreg", x)
    result = client.infer("breast-cancer", [tensor(x)])  # defaults: every output
    np.testing.assert_array_equal(result.as_numpy("label"), want["label"])
    np.testing.assert_allclose(result.as_numpy("probabilities"), want["probabilities"],
                               rtol=0, atol=1e-6)
    response = result.get_response()
    assert (response.model_name, response.model_version) == ("breast-cancer", "1")
    only = client.infer("breast-cancer", [tensor(x)],
                        outputs=[triton.InferRequestedOutput("probabilities")])
    assert only.as_numpy("label") is None
    np.testing.assert_allclose(only.as_numpy("probabilities"), want["probabilities"],
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("version", ["", "1"])
def test_infer_on_a_concrete_model(client: triton.InferenceServerClient,
                                   x: np.ndarray[Any, Any], version: str) -> None:
    want = onnx_direct("bc-gbt", x)
    result = client.infer("bc-gbt", [tensor(x)], model_version=version)
    np.testing.assert_array_equal(result.as_numpy("label"), want["label"])
    np.testing.assert_allclose(result.as_numpy("probabilities"), want["probabilities"],
                               rtol=0, atol=1e-6)
    assert result.get_response().model_name == "bc-gbt"


async def test_the_aio_client(gw: LiveGateway, x: np.ndarray[Any, Any]) -> None:
    want = onnx_direct("bc-logreg", x)
    client = triton_aio.InferenceServerClient(gw.grpc)
    try:
        assert await client.is_server_ready()
        inp = triton_aio.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        result = await client.infer("breast-cancer", [inp])
        np.testing.assert_array_equal(result.as_numpy("label"), want["label"])
        np.testing.assert_allclose(result.as_numpy("probabilities"), want["probabilities"],
                                   rtol=0, atol=1e-6)
        meta = await client.get_model_metadata("breast-cancer", as_json=True)
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": ["-1", "30"]}]
    finally:
        await client.close()


def test_every_grpc_request_yields_a_paired_record_with_the_shadows(
        gw: LiveGateway, client: triton.InferenceServerClient,
        x: np.ndarray[Any, Any]) -> None:
    before = len(gw.sink.records)
    for i in range(4):
        client.infer("breast-cancer", [tensor(x[i:i + 1])], request_id=f"v2-{i}",
                     headers={"x-request-id": f"grpc-rec-{i}"})
    poll(lambda: len({r["request_id"] for r in gw.sink.records
                      if r["request_id"].startswith("grpc-rec-")}) == 4, 10, "4 records")
    records = {r["request_id"]: r for r in gw.sink.records[before:]
               if r["request_id"].startswith("grpc-rec-")}
    for i in range(4):
        record = records[f"grpc-rec-{i}"]
        assert record["id"] == f"v2-{i}"  # the V2 id, beside the gateway's request id
        assert [(p["model"], p["role"], p["status"]) for p in record["predictions"]] == [
            ("bc-logreg", "champion", "ok"), ("bc-gbt", "shadow", "ok"),
            ("bc-rf", "shadow", "ok")]
        for prediction in record["predictions"]:
            want = onnx_direct(prediction["model"], x[i:i + 1])
            assert prediction["output"]["label"] == [("malignant", "benign")[
                int(want["label"][0])]]
            np.testing.assert_allclose(prediction["output"]["scores"], want["probabilities"],
                                       rtol=0, atol=1e-6)


def test_bad_input_gets_the_http_message_and_its_grpc_code(
        gw: LiveGateway, client: triton.InferenceServerClient,
        x: np.ndarray[Any, Any]) -> None:
    with httpx.Client(base_url=f"http://{gw.http}") as http:
        cases = [  # (model, grpc inputs, JSON body, HTTP status, gRPC code)
            ("breast-cancer", [tensor(x[:, :29])], v2_body(x[:, :29].tolist()), 400,
             "StatusCode.INVALID_ARGUMENT"),
            ("breast-cancer", [tensor(x.astype(np.float64), datatype="FP64")],
             {"inputs": [{"name": "input", "shape": [5, 30], "datatype": "FP64",
                          "data": x.tolist()}]}, 400, "StatusCode.INVALID_ARGUMENT"),
            ("bc-gbt", [tensor(x, name="nope")], v2_body(x.tolist(), name="nope"), 400,
             "StatusCode.INVALID_ARGUMENT"),
            ("ghost", [tensor(x)], v2_body(x.tolist()), 404, "StatusCode.NOT_FOUND"),
        ]
        for model, inputs, body, status, code in cases:
            r = http.post(f"/v2/models/{model}/infer", json=body)
            assert r.status_code == status, r.text
            with pytest.raises(InferenceServerException) as info:
                client.infer(model, inputs)
            assert info.value.message() == r.json()["error"]
            assert info.value.status() == code


def test_trailing_metadata_carries_the_request_id_and_the_model(
        gw: LiveGateway, x: np.ndarray[Any, Any]) -> None:
    message = encode_infer_request(InferenceRequest({"input": x[:1]}), "breast-cancer")
    with grpc.insecure_channel(gw.grpc) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        _, call = stub.ModelInfer.with_call(message, metadata=(("x-request-id", "trail-1"),))
        assert dict(call.trailing_metadata()) == {
            "x-request-id": "trail-1", "x-shadowgate-model": "bc-logreg",
            "x-shadowgate-version": "1", "x-shadowgate-variant": "champion"}
        bad = encode_infer_request(InferenceRequest({"input": x[:1, :3]}), "breast-cancer")
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(bad)
        trailing = dict(info.value.trailing_metadata())  # type: ignore[attr-defined]
        assert len(trailing["x-request-id"]) == 32
        assert "x-shadowgate-model" not in trailing  # refused: no model ran


def test_server_and_model_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    server = client.get_server_metadata(as_json=True)
    assert server["name"] == "shadowgate" and server["version"] == __version__
    assert "binary_tensor_data" in server["extensions"]
    assert "statistics" in server["extensions"]
    assert client.is_model_ready("breast-cancer") and client.is_model_ready("bc-rf", "1")
    meta = client.get_model_metadata("bc-rf", as_json=True)
    assert (meta["name"], meta["versions"], meta["platform"]) == (
        "bc-rf", ["1"], "onnxruntime_onnx")
    assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"]
    with pytest.raises(InferenceServerException) as info:
        client.is_model_ready("ghost")
    assert info.value.status() == "StatusCode.NOT_FOUND" and "'ghost'" in info.value.message()


def test_model_config_statistics_and_index_match_http(
        gw: LiveGateway, client: triton.InferenceServerClient,
        x: np.ndarray[Any, Any]) -> None:
    client.infer("breast-cancer", [tensor(x)])
    with httpx.Client(base_url=f"http://{gw.http}") as http:
        http_config = http.get("/v2/models/breast-cancer/config").json()
        config = client.get_model_config("breast-cancer").config
        assert config.SerializeToString() == json_format.ParseDict(
            http_config, mc.ModelConfig()).SerializeToString()
        assert config.max_batch_size > 0 and list(config.input[0].dims) == [30]
        stats = client.get_inference_statistics("breast-cancer", as_json=True)
        [entry] = stats["model_stats"]
        assert (entry["name"], entry["version"]) == ("breast-cancer", "0")
        assert int(entry["inference_stats"]["success"]["count"]) >= 1
        assert int(entry["inference_count"]) >= 5
        index = client.get_model_repository_index(as_json=True)["models"]
        assert index == http.post("/v2/repository/index", json={}).json()


def test_stream_infer_answers_each_request_in_order(gw: LiveGateway,
                                                    x: np.ndarray[Any, Any]) -> None:
    answers: queue.Queue[tuple[Any, Any]] = queue.Queue()
    with contextlib.closing(triton.InferenceServerClient(gw.grpc)) as client:
        client.start_stream(callback=lambda result, error: answers.put((result, error)))
        client.async_stream_infer("breast-cancer", [tensor(x[:2])], request_id="s1")
        client.async_stream_infer("breast-cancer", [tensor(x[:2, :4])], request_id="s2")
        first, second = answers.get(timeout=10), answers.get(timeout=10)
        client.stop_stream()
    result, error = first
    assert error is None and result.get_response().id == "s1"
    np.testing.assert_array_equal(result.as_numpy("label"),
                                  onnx_direct("bc-logreg", x[:2])["label"])
    assert second[0] is None and "expects [-1, 30]" in second[1].message()


def test_metrics_count_grpc_requests_like_http(x: np.ndarray[Any, Any]) -> None:
    with live_gateway(config(DEPLOYMENTS)) as fresh, \
            contextlib.closing(triton.InferenceServerClient(fresh.grpc)) as client:
        for _ in range(3):
            client.infer("breast-cancer", [tensor(x)])
        with pytest.raises(InferenceServerException):
            client.infer("breast-cancer", [tensor(x[:, :3])])
        assert fresh.metric("model_infer_request_success_total", model_name="bc-logreg",
                            model_version="1") == 3
        assert fresh.metric("model_infer_request_failure_total", model_name="bc-logreg",
                            model_version="1", reason="invalid_input") == 1
        assert fresh.metric("nv_inference_request_success", model="breast-cancer",
                            version="") == 3
        assert fresh.metric("nv_inference_count", model="breast-cancer", version="") == 15
        assert fresh.metric("nv_inference_request_failure", model="breast-cancer",
                            version="") == 1
        poll(lambda: fresh.metric("nv_inference_request_success", model="bc-rf",
                                  version="1") == 3, 10, "the shadows' successes")
        assert fresh.metric("nv_inference_count", model="bc-gbt", version="1") == 15
        assert fresh.metric("rest_server_requests_in_progress") == 0


def test_the_inference_token_comes_from_the_authorization_metadata(
        x: np.ndarray[Any, Any]) -> None:
    token = "grpc-token-0123456789abcdef"
    with live_gateway(config(), inference_token=token) as guarded, \
            contextlib.closing(triton.InferenceServerClient(guarded.grpc)) as client:
        assert client.is_server_ready()  # health needs no token
        with pytest.raises(InferenceServerException) as info:
            client.infer("breast-cancer", [tensor(x)])
        assert info.value.status() == "StatusCode.UNAUTHENTICATED"
        assert "Authorization: Bearer" in info.value.message()
        with pytest.raises(InferenceServerException) as info:
            client.infer("breast-cancer", [tensor(x)], headers={"authorization": "Bearer nope"})
        assert info.value.status() == "StatusCode.PERMISSION_DENIED"
        with pytest.raises(InferenceServerException):
            client.get_model_metadata("breast-cancer")
        result = client.infer("breast-cancer", [tensor(x)],
                              headers={"authorization": f"Bearer {token}"})
        assert result.as_numpy("label") is not None
        assert client.get_model_metadata("breast-cancer",
                                         headers={"authorization": f"Bearer {token}"})


async def test_a_port_in_use_is_an_error_unless_workers_share_it() -> None:
    """gRPC sets SO_REUSEPORT by default, so a second gateway on the same port would take
    half the connections silently: one process binds alone; workers share on purpose."""
    runtime = cast(Runtime, object())  # no call is made
    port = free_port()
    first = await start_server(runtime, "127.0.0.1", port, reuse_port=False,
                               max_message_bytes=1 << 20)
    try:
        with pytest.raises(OSError, match=f"127.0.0.1:{port}.*SHADOWGATE_GRPC_PORT"):
            await start_server(runtime, "127.0.0.1", port, reuse_port=False,
                               max_message_bytes=1 << 20)
    finally:
        await first.stop(None)
    workers = [await start_server(runtime, "127.0.0.1", port, reuse_port=True,
                                  max_message_bytes=1 << 20) for _ in range(2)]
    for server in workers:
        await server.stop(None)
