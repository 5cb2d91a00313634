"""gateway/grpc/convert.py: gRPC messages <-> our requests/responses, checked against
tritonclient.grpc's messages and client."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import _utils as triton_utils
from tritonclient.grpc import service_pb2 as triton_pb2
from tritonclient.utils import InferenceServerException

from gateway.errors import (
    BadGateway,
    BadRequest,
    GatewayError,
    GatewayTimeout,
    InvalidInput,
    NotFound,
    NotReady,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from gateway.grpc import grpc_service_pb2 as pb
from gateway.grpc import grpc_service_pb2_grpc as pb_grpc
from gateway.grpc.convert import (
    decode_infer_request,
    decode_infer_response,
    encode_infer_request,
    encode_infer_response,
    parameters_to_proto,
    status_of,
    typed_array,
    typed_contents,
)
from gateway.protocol import v2
from gateway.protocol.tensors import (
    DTYPES,
    Array,
    InferenceRequest,
    InferenceResponse,
    datatype_of,
)
from tests.protocol.samples import raises, same, sample

ALL = sorted(DTYPES)
TYPED = [d for d in ALL if d != "FP16"]


def as_bytes(array: Array) -> Array:
    """BYTES as tritonclient returns them: bytes elements."""
    if array.dtype != object:
        return array
    return np.vectorize(lambda v: v.encode() if isinstance(v, str) else v, otypes=[object])(array)


def triton_request(*inputs: tuple[str, Array], outputs: tuple[str, ...] = (),
                   **options: Any) -> triton_pb2.ModelInferRequest:
    """The message tritonclient.grpc's client sends for these inputs."""
    tensors = []
    for name, x in inputs:
        tensor = triton.InferInput(name, list(x.shape), datatype_of(x))
        tensor.set_data_from_numpy(x)
        tensors.append(tensor)
    kwargs = {"model_version": "", "request_id": "", "sequence_id": 0, "sequence_start": False,
              "sequence_end": False, "priority": 0, "timeout": None, "parameters": None,
              **options}
    return triton_utils._get_inference_request(
        model_name="m", inputs=tensors, outputs=[triton.InferRequestedOutput(n) for n in outputs]
        or None, **kwargs)


def ours(message: Any) -> pb.ModelInferRequest:
    return pb.ModelInferRequest.FromString(message.SerializeToString())


# -- round trips: every datatype, raw and typed ------------------------------------------------

@pytest.mark.parametrize(("datatype", "raw"), [
    *((d, True) for d in ALL), *((d, False) for d in TYPED)])  # FP16 has no typed field
def test_request_round_trip(datatype: str, raw: bool) -> None:
    x = sample(datatype)
    request = InferenceRequest({"x": x, "n": np.array([7], dtype=np.int64)}, id="r",
                               parameters={"k": "v", "flag": True}, outputs=["y"])
    wire = encode_infer_request(request, "m", raw=raw).SerializeToString()
    back = decode_infer_request(pb.ModelInferRequest.FromString(wire))
    assert same(back.inputs["x"], x) and back.inputs["n"].tolist() == [7]
    assert (back.id, back.parameters, back.outputs) == ("r", {"k": "v", "flag": True}, ["y"])
    assert back.datatypes == {"x": datatype, "n": "INT64"}
    assert back.finite is (datatype not in ("FP16", "FP32", "FP64"))


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
@pytest.mark.parametrize("datatype", TYPED)
def test_response_round_trip(datatype: str, raw: bool) -> None:
    x = sample(datatype)
    message = encode_infer_response(InferenceResponse("m", "1", {"y": x}, id="r"))
    if not raw:  # as a server that sends typed contents would
        del message.raw_output_contents[:]
        message.outputs[0].contents.CopyFrom(typed_contents(x))
    back = decode_infer_response(pb.ModelInferResponse.FromString(message.SerializeToString()))
    assert same(back.outputs["y"], x)
    assert (back.model_name, back.model_version, back.id, back.parameters) == ("m", "1", "r", None)


def test_fp16_is_raw_only() -> None:
    with raises(ValueError, "FP16 has no typed contents"):
        typed_contents(sample("FP16"))
    message = pb.ModelInferRequest(inputs=[pb.ModelInferRequest.InferInputTensor(
        name="h", datatype="FP16", shape=[1], contents=pb.InferTensorContents(fp32_contents=[1]))])
    with raises(InvalidInput, "inputs[0] ('h').contents", "FP16 has no typed contents field",
                "raw_input_contents"):
        decode_infer_request(message)
    empty = pb.ModelInferRequest(inputs=[pb.ModelInferRequest.InferInputTensor(
        name="h", datatype="FP16", shape=[0, 2])])
    assert decode_infer_request(empty).inputs["h"].shape == (0, 2)


# -- tritonclient.grpc: the messages it sends and reads ------------------------------------------

@pytest.mark.parametrize("datatype", ALL)
def test_decodes_tritonclient_request(datatype: str) -> None:
    x = sample(datatype)
    theirs = triton_request(("x", x), ("z", sample("INT8")), outputs=("y",), request_id="r1")
    request = decode_infer_request(ours(theirs))
    assert same(request.inputs["x"], x) and same(request.inputs["z"], sample("INT8"))
    assert (request.id, request.outputs) == ("r1", ["y"])
    # and we build the very bytes tritonclient does
    mine = encode_infer_request(InferenceRequest({"x": x, "z": sample("INT8")}, id="r1",
                                                 outputs=["y"]), "m")
    assert mine.SerializeToString(deterministic=True) == \
        theirs.SerializeToString(deterministic=True)


def test_decodes_tritonclient_parameters() -> None:
    theirs = triton_request(("x", sample("FP32")), sequence_id="s1", sequence_start=True,
                            priority=3, timeout=1000, parameters={"a": "b", "n": -2})
    assert decode_infer_request(ours(theirs)).parameters == {
        "sequence_id": "s1", "sequence_start": True, "sequence_end": False, "priority": 3,
        "timeout": 1000, "a": "b", "n": -2}


@pytest.mark.parametrize("datatype", ALL)
def test_tritonclient_reads_our_response(datatype: str) -> None:
    x = sample(datatype)
    message = encode_infer_response(InferenceResponse("m", "1", {"y": x, "p": sample("FP64")},
                                                      id="r", parameters={"big": 2**63}))
    theirs = triton_pb2.ModelInferResponse.FromString(message.SerializeToString())
    result = triton.InferResult(theirs)
    assert same(result.as_numpy("y"), as_bytes(x))
    assert same(result.as_numpy("p"), sample("FP64"))
    assert (theirs.model_name, theirs.model_version, theirs.id) == ("m", "1", "r")
    assert theirs.parameters["big"].uint64_param == 2**63


class Echo(pb_grpc.GRPCInferenceServiceServicer):
    """A test-only servicer: answers ModelInfer with its inputs, or with the error raised."""

    def ModelInfer(self, request: pb.ModelInferRequest,
                   context: grpc.ServicerContext) -> pb.ModelInferResponse:
        try:
            decoded = decode_infer_request(request)
        except GatewayError as exc:
            context.abort(*status_of(exc))
        return encode_infer_response(InferenceResponse(
            request.model_name, request.model_version or "1", decoded.inputs, decoded.id))


@pytest.fixture(scope="module")
def client() -> Iterator[triton.InferenceServerClient]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with contextlib.closing(triton.InferenceServerClient(f"127.0.0.1:{port}")) as client:
        yield client
    server.stop(None)


def test_tritonclient_talks_to_a_server_built_on_our_stubs(
        client: triton.InferenceServerClient) -> None:
    tensors = []
    for name in ("BYTES", "FP16", "UINT64", "BOOL"):
        tensor = triton.InferInput(name, [2, 3], name)
        tensor.set_data_from_numpy(sample(name))
        tensors.append(tensor)
    result = client.infer("m", tensors, request_id="r9")
    for name in ("BYTES", "FP16", "UINT64", "BOOL"):
        assert same(result.as_numpy(name), as_bytes(sample(name)))
    assert result.get_response().id == "r9"


def test_tritonclient_sees_our_error_status_and_message(
        client: triton.InferenceServerClient) -> None:
    tensor = triton.InferInput("x", [2], "FP8")  # the client sends any datatype it is given
    with pytest.raises(InferenceServerException) as info:
        client.infer("m", [tensor])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "inputs[0] ('x').datatype: expected one of" in info.value.message()


# -- the same errors as the JSON form -----------------------------------------------------------

def tensor(name: str = "t", datatype: str = "FP32", shape: tuple[int, ...] = (1,),
           **contents: Any) -> pb.ModelInferRequest.InferInputTensor:
    return pb.ModelInferRequest.InferInputTensor(
        name=name, datatype=datatype, shape=shape,
        contents=pb.InferTensorContents(**contents) if contents else None)


@pytest.mark.parametrize(("message", "payload"), [
    (pb.ModelInferRequest(), {"inputs": []}),
    (pb.ModelInferRequest(inputs=[tensor(name="")]),
     {"inputs": [{"name": "", "datatype": "FP32", "shape": [1], "data": [1]}]}),
    (pb.ModelInferRequest(inputs=[tensor(datatype="FP8")]),
     {"inputs": [{"name": "t", "datatype": "FP8", "shape": [1], "data": [1]}]}),
    (pb.ModelInferRequest(inputs=[tensor(shape=(2, -1))]),
     {"inputs": [{"name": "t", "datatype": "FP32", "shape": [2, -1], "data": [1]}]}),
    (pb.ModelInferRequest(inputs=[tensor(shape=(1,) * 33)]),
     {"inputs": [{"name": "t", "datatype": "FP32", "shape": [1] * 33, "data": [1]}]}),
    (pb.ModelInferRequest(inputs=[tensor(fp32_contents=[1]), tensor(fp32_contents=[1])]),
     {"inputs": [{"name": "t", "datatype": "FP32", "shape": [1], "data": [1]}] * 2}),
])
def test_envelope_errors_match_json(message: pb.ModelInferRequest, payload: Any) -> None:
    with pytest.raises(BadRequest) as json_error:
        v2.decode_request(payload)
    with raises(type(json_error.value), json_error.value.message):
        decode_infer_request(message)


@pytest.mark.parametrize(("message", "error", "words"), [
    (pb.ModelInferRequest(inputs=[tensor(int_contents=[1])]), InvalidInput,
     ("inputs[0] ('t').contents: expected fp32_contents for FP32, got int_contents",)),
    (pb.ModelInferRequest(inputs=[tensor(shape=(2, 2), fp32_contents=[1, 2, 3])]), InvalidInput,
     ("inputs[0] ('t').contents.fp32_contents: shape [2, 2] needs 4 elements, got 3",)),
    (pb.ModelInferRequest(inputs=[tensor(shape=(2,))]), InvalidInput,
     ("fp32_contents: shape [2] needs 2 elements, got 0",)),
    (pb.ModelInferRequest(inputs=[tensor(datatype="INT8", shape=(2,), int_contents=[1, 300])]),
     InvalidInput, ("int_contents: value out of range for INT8 [-128, 127]: got 300",)),
    (pb.ModelInferRequest(inputs=[tensor(datatype="UINT16", uint_contents=[70000])]),
     InvalidInput, ("value out of range for UINT16 [0, 65535]: got 70000",)),
    (pb.ModelInferRequest(inputs=[tensor(), tensor("u")], raw_input_contents=[b"1234"]),
     BadRequest, ("raw_input_contents: expected one entry per input (2), got 1",)),
    (pb.ModelInferRequest(inputs=[tensor(fp32_contents=[1])], raw_input_contents=[b"1234"]),
     BadRequest, ("inputs[0] ('t').contents: must be unset when raw_input_contents is used",)),
    (pb.ModelInferRequest(inputs=[tensor(shape=(2,))], raw_input_contents=[b"1234567"]),
     InvalidInput, ("raw_input_contents[0] ('t'): shape [2] of FP32 needs 8 bytes",
                    "got 7")),
    (pb.ModelInferRequest(inputs=[tensor(datatype="BYTES")],
                          raw_input_contents=[b"\x05\x00\x00\x00ab"]),
     InvalidInput, ("raw_input_contents[0] ('t'): BYTES element 0: length 5 runs past",)),
    (pb.ModelInferRequest(inputs=[tensor(fp32_contents=[1])],
                          parameters={"k": pb.InferParameter()}),
     BadRequest, ("parameters['k']: no value set",)),
])
def test_contents_errors(message: pb.ModelInferRequest, error: type[Exception],
                         words: tuple[str, ...]) -> None:
    with raises(error, *words):
        decode_infer_request(message)


def test_typed_bytes_are_str_like_json_unless_not_utf8() -> None:
    text = typed_array(pb.InferTensorContents(bytes_contents=[b"\xc3\xa9"]), "BYTES", [1], "t")
    raw = typed_array(pb.InferTensorContents(bytes_contents=[b"\xff"]), "BYTES", [1], "t")
    assert (text.tolist(), raw.tolist()) == (["é"], [b"\xff"])


def test_parameters_to_proto() -> None:
    message = pb.ModelInferResponse()
    parameters_to_proto({"b": False, "i": -1, "u": 2**64 - 1, "f": 0.5, "s": "x"},
                        message.parameters)
    assert {k: v.WhichOneof("parameter_choice") for k, v in message.parameters.items()} == {
        "b": "bool_param", "i": "int64_param", "u": "uint64_param", "f": "double_param",
        "s": "string_param"}
    for bad in ([1], {"a": 1}, None, 2**64):
        with raises(TypeError, "no InferParameter form"):
            parameters_to_proto({"k": bad}, message.parameters)


# -- errors -> gRPC status ----------------------------------------------------------------------

class ModelFailed(GatewayError):
    code = "model_error"


class NotImplementedHere(GatewayError):
    status_code = 501


@pytest.mark.parametrize(("error", "code"), [
    (BadRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (UnsupportedMediaType, grpc.StatusCode.UNIMPLEMENTED),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (PayloadTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (NotReady, grpc.StatusCode.UNAVAILABLE),
    (BadGateway, grpc.StatusCode.UNAVAILABLE),
    (GatewayTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (GatewayError, grpc.StatusCode.INTERNAL),
    (ModelFailed, grpc.StatusCode.INTERNAL),
    (NotImplementedHere, grpc.StatusCode.UNIMPLEMENTED),
])
def test_status_of(error: type[GatewayError], code: grpc.StatusCode) -> None:
    assert status_of(error("model 'x' not found")) == (code, "model 'x' not found")
