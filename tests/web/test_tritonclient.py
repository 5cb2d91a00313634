"""Triton's own HTTP clients (tritonclient.http and .http.aio) with their defaults against a
real gateway: the binary tensor data extension both ways, JSON outputs when asked, the
async client's octet-stream JSON, Triton's extensions; every datatype end to end over HTTP
(binary and JSON) and gRPC; a bad input gets the same words on every wire form."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton
import tritonclient.http.aio as triton_aio
from tritonclient.utils import InferenceServerException

from gateway.protocol.binary import tensor_bytes
from tests.backends import Echo
from tests.helpers import LiveGateway, config, live_gateway, onnx_direct, v2_body
from tests.protocol.samples import same, sample
from tests.tritonclients import HttpClient

MODELS_ = [{"name": n, "version": "1"} for n in ("bc-logreg", "bc-gbt")] + [
    {"name": "echo", "python": "tests.backends:echo"}]
DEPLOYMENTS = [{"name": "breast-cancer", "champion": "bc-logreg",
                "shadows": [{"model": "bc-gbt"}]}]


@pytest.fixture(scope="module")
def gw() -> Iterator[LiveGateway]:
    with live_gateway(config(DEPLOYMENTS, models=MODELS_)) as running:
        yield running


@pytest.fixture(scope="module")
def x(holdout: list[dict[str, Any]]) -> np.ndarray[Any, Any]:
    return np.array([r["features"] for r in holdout[:4]], dtype=np.float32)


@pytest.fixture
def client(gw: LiveGateway) -> Iterator[triton.InferenceServerClient]:
    with contextlib.closing(HttpClient(gw.http)) as c:
        yield c


def tensor(x: np.ndarray[Any, Any], name: str = "input", binary: bool = True
           ) -> triton.InferInput:
    inp = triton.InferInput(name, list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    return inp


def check(result: Any, model: str, x: np.ndarray[Any, Any]) -> None:
    want = onnx_direct(model, x)
    np.testing.assert_array_equal(result.as_numpy("label"), want["label"])
    np.testing.assert_allclose(result.as_numpy("probabilities"), want["probabilities"],
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize(("name", "model"), [("breast-cancer", "bc-logreg"),
                                             ("bc-gbt", "bc-gbt")])
def test_defaults_binary_both_ways(client: triton.InferenceServerClient,
                                   x: np.ndarray[Any, Any], name: str, model: str) -> None:
    # Defaults: binary inputs, and binary outputs (named or, with none named,
    # binary_data_output).
    check(client.infer(name, [tensor(x)]), model, x)
    outputs = [triton.InferRequestedOutput("label"), triton.InferRequestedOutput("probabilities")]
    result = client.infer(name, [tensor(x)], outputs=outputs, request_id="r-1")
    check(result, model, x)
    response = result.get_response()
    assert response["id"] == "r-1" and response["model_name"] == name
    assert all(o["parameters"]["binary_data_size"] > 0 for o in response["outputs"])


def test_json_outputs_when_asked(client: triton.InferenceServerClient,
                                 x: np.ndarray[Any, Any]) -> None:
    outputs = [triton.InferRequestedOutput("label", binary_data=False),
               triton.InferRequestedOutput("probabilities", binary_data=True)]
    for binary_input in (True, False):
        result = client.infer("breast-cancer", [tensor(x, binary=binary_input)],
                              outputs=outputs)
        check(result, "bc-logreg", x)
        label, proba = result.get_response()["outputs"]
        assert "data" in label and "binary_data_size" not in label.get("parameters", {})
        assert proba["parameters"]["binary_data_size"] == 4 * 8


async def test_the_aio_client(gw: LiveGateway, x: np.ndarray[Any, Any]) -> None:
    """It sends application/octet-stream even for a body that is all JSON."""
    client = triton_aio.InferenceServerClient(gw.http)
    try:
        assert await client.is_server_ready()
        assert (await client.get_model_metadata("breast-cancer"))["name"] == "breast-cancer"
        for binary in (True, False):
            inp = triton_aio.InferInput("input", list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=binary)
            outputs = [triton_aio.InferRequestedOutput(n, binary_data=binary)
                       for n in ("label", "probabilities")]
            check(await client.infer("breast-cancer", [inp], outputs=outputs), "bc-logreg", x)
            check(await client.infer("bc-gbt", [inp]), "bc-gbt", x)
        config = await client.get_model_config("breast-cancer")
        assert config["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [30]}]
    finally:
        await client.close()


def test_the_binary_response_on_the_wire(gw: LiveGateway, x: np.ndarray[Any, Any]) -> None:
    raw = tensor_bytes(x)
    head = orjson.dumps({"inputs": [{"name": "input", "shape": list(x.shape),
                                     "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "parameters": {"binary_data_output": True}})
    r = httpx.post(f"http://{gw.http}/v2/models/breast-cancer/infer", content=head + raw,
                   headers={"inference-header-content-length": str(len(head)),
                            "content-type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    length = int(r.headers["inference-header-content-length"])
    body = orjson.loads(r.content[:length])
    assert [o["parameters"]["binary_data_size"] for o in body["outputs"]] == [4 * 8, 4 * 2 * 4]
    assert len(r.content) == length + 4 * 8 + 4 * 2 * 4
    assert r.headers["x-shadowgate-model"] == "bc-logreg"


@pytest.mark.parametrize("datatype", Echo.DATATYPES)
def test_every_datatype_end_to_end(gw: LiveGateway, client: triton.InferenceServerClient,
                                   datatype: str) -> None:
    """Each datatype's edge values (NaN and infinities too) through the gateway and back:
    HTTP binary, HTTP JSON (for values JSON can carry) and gRPC."""
    wire = {d: np.ascontiguousarray(sample(d).T) for d in Echo.DATATYPES}
    wire["BYTES"] = np.vectorize(lambda v: v.encode(), otypes=[object])(wire["BYTES"])
    want = wire[datatype]

    def inputs(module: Any, json: bool = False) -> list[Any]:
        made = []
        for d, a in wire.items():
            inp = module.InferInput(f"x_{d}", list(a.shape), d)
            if module is triton:  # floats stay binary: JSON has no NaN or infinity
                inp.set_data_from_numpy(a, binary_data=not json or d.startswith("FP"))
            else:
                inp.set_data_from_numpy(a)
            made.append(inp)
        return made

    result = client.infer("echo", inputs(triton))
    assert same(result.as_numpy(f"y_{datatype}"), want)
    if not datatype.startswith("FP"):
        outputs = [triton.InferRequestedOutput(f"y_{datatype}", binary_data=False)]
        result = client.infer("echo", inputs(triton, json=True), outputs=outputs)
        assert "data" in result.get_response()["outputs"][0]
        got = result.as_numpy(f"y_{datatype}")
        if datatype == "BYTES":  # tritonclient gives JSON strings as str
            got = np.vectorize(lambda v: v.encode(), otypes=[object])(got)
        assert same(got, want)
    with contextlib.closing(triton_grpc.InferenceServerClient(gw.grpc)) as grpc_client:
        result = grpc_client.infer("echo", inputs(triton_grpc))
        assert same(result.as_numpy(f"y_{datatype}"), want)


def test_a_bad_input_gets_the_same_words_everywhere(gw: LiveGateway,
                                                    client: triton.InferenceServerClient,
                                                    x: np.ndarray[Any, Any]) -> None:
    bad = x[:, :7]
    json_error = httpx.post(f"http://{gw.http}/v2/models/breast-cancer/infer",
                            json=v2_body(bad.tolist())).json()["error"]
    assert "expects [-1, 30]" in json_error
    for binary in (True, False):
        with pytest.raises(InferenceServerException) as info:
            client.infer("breast-cancer", [tensor(bad, binary=binary)])
        assert info.value.message() == json_error and info.value.status() == "400"
    with contextlib.closing(triton_grpc.InferenceServerClient(gw.grpc)) as grpc_client:
        inp = triton_grpc.InferInput("input", list(bad.shape), "FP32")
        inp.set_data_from_numpy(bad)
        with pytest.raises(InferenceServerException) as info:
            grpc_client.infer("breast-cancer", [inp])
        assert info.value.message() == json_error


def test_bad_binary_framing_is_a_clear_400(gw: LiveGateway, x: np.ndarray[Any, Any]) -> None:
    url = f"http://{gw.http}/v2/models/breast-cancer/infer"
    raw = tensor_bytes(x)
    head = orjson.dumps({"inputs": [{"name": "input", "shape": list(x.shape),
                                     "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw)}}]})
    cases = [
        (head + raw[:-4], {"inference-header-content-length": str(len(head))},
         "run past the end of the binary data"),
        (head + raw, {"inference-header-content-length": "abc"}, "expected an integer"),
        (head + raw, {}, "needs the Inference-Header-Content-Length header"),
        (b"\x00" + raw, {}, "needs the Inference-Header-Content-Length header"),
        (head + raw + b"xx", {"inference-header-content-length": str(len(head))},
         "2 bytes after the JSON are unused"),
    ]
    for body, headers, words in cases:
        r = httpx.post(url, content=body, headers={"content-type": "application/octet-stream",
                                                   **headers})
        assert r.status_code == 400 and words in r.json()["error"], (words, r.text)
        assert "x-shadowgate-model" not in r.headers


def test_model_configuration_statistics_and_repository(client: triton.InferenceServerClient,
                                                       x: np.ndarray[Any, Any]) -> None:
    metadata = client.get_server_metadata()
    assert {"binary_tensor_data", "model_configuration", "statistics",
            "model_repository"} <= set(metadata["extensions"])
    config = client.get_model_config("bc-gbt")
    assert (config["name"], config["platform"], config["backend"]) == (
        "bc-gbt", "onnxruntime_onnx", "onnxruntime")
    assert config["max_batch_size"] > 0
    client.infer("bc-gbt", [tensor(x)])
    [stats] = client.get_inference_statistics("bc-gbt")["model_stats"]
    assert (stats["name"], stats["version"]) == ("bc-gbt", "1")
    assert stats["inference_stats"]["success"]["count"] >= 1
    assert stats["inference_stats"]["compute_infer"]["ns"] > 0
    names = {(m["name"], m.get("version")) for m in client.get_model_repository_index()}
    assert {("breast-cancer", None), ("bc-logreg", "1"), ("bc-gbt", "1"),
            ("echo", "1")} <= names
    with pytest.raises(InferenceServerException) as info:
        client.unload_model("bc-gbt")
    assert info.value.status() == "501" and "config file" in info.value.message()


def test_classification_is_refused_not_ignored(client: triton.InferenceServerClient,
                                               x: np.ndarray[Any, Any]) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.infer("breast-cancer", [tensor(x)],
                     outputs=[triton.InferRequestedOutput("probabilities", class_count=1)])
    assert "classification extension is not supported" in info.value.message()
