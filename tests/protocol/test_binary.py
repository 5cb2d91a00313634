"""gateway/protocol/binary.py: the binary tensor data extension, checked against tritonclient."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton

from gateway.errors import BadRequest, InvalidInput
from gateway.protocol import v2
from gateway.protocol.binary import (
    BinaryOutputs,
    binary_outputs,
    decode_request_binary,
    encode_response_binary,
    from_bytes,
    split_body,
    tensor_bytes,
)
from gateway.protocol.tensors import (
    DTYPES,
    Array,
    InferenceRequest,
    InferenceResponse,
    datatype_of,
)
from tests.protocol.samples import raises, same, sample

ALL = sorted(DTYPES)
NUMERIC = [d for d in ALL if d != "BYTES"]


def binary_request(**tensors: Array) -> tuple[dict[str, Any], bytes]:
    inputs = []
    tail = b""
    for name, array in tensors.items():
        raw = tensor_bytes(array)
        inputs.append({"name": name, "datatype": datatype_of(array),
                       "shape": list(array.shape), "parameters": {"binary_data_size": len(raw)}})
        tail += raw
    return {"inputs": inputs}, tail


def one(datatype: str, shape: list[int], size: int, **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "t", "datatype": datatype, "shape": shape,
                        "parameters": {"binary_data_size": size}, **extra}]}


# -- split_body ---------------------------------------------------------------------------

def test_split_body() -> None:
    assert split_body(b'{"a": 1}', None) == (b'{"a": 1}', b"")
    for length in (4, b"4", "4", b" 4 "):
        assert split_body(b"abcdefg", length) == (b"abcd", b"efg")
    assert split_body(b"abcd", 4) == (b"abcd", b"")


@pytest.mark.parametrize(("length", "words"), [
    (b"abc", ("integer", "'abc'")), (b"1.5", ("integer", "'1.5'")), (b"", ("integer", "''")),
    (b"0x10", ("integer",)), ("\u0661", ("integer",)), (True, ("integer", "'True'")),
    (b"-3", ("positive", "-3")), (-3, ("positive",)), (0, ("positive", "got 0")),
    (b"11", ("11 is larger than the body (10 bytes)",)),
])
def test_split_body_errors(length: Any, words: tuple[str, ...]) -> None:
    with raises(BadRequest, "Inference-Header-Content-Length", *words):
        split_body(b"0123456789", length)


# -- round trips: every datatype --------------------------------------------------------------

@pytest.mark.parametrize("datatype", ALL)
def test_round_trip(datatype: str) -> None:
    x = sample(datatype)
    payload, tail = binary_request(x=x)
    request = decode_request_binary(payload, tail)
    assert same(request.inputs["x"], x)
    assert request.inputs["x"].flags.writeable
    assert request.datatypes == {"x": datatype}
    assert request.finite is (datatype not in ("FP16", "FP32", "FP64"))


def test_layout_is_little_endian_and_row_major() -> None:
    assert tensor_bytes(np.array([[1, 2], [3, 4]], dtype=np.uint16)) == \
        b"\x01\x00\x02\x00\x03\x00\x04\x00"
    assert tensor_bytes(np.array([1, 2], dtype=">i4")) == b"\x01\x00\x00\x00\x02\x00\x00\x00"
    assert tensor_bytes(np.arange(4, dtype=np.int8).reshape(2, 2).T) == b"\x00\x02\x01\x03"
    assert tensor_bytes(np.array([True, False])) == b"\x01\x00"
    assert tensor_bytes(np.array(["ab", b"\xff"], dtype=object)) == \
        b"\x02\x00\x00\x00ab\x01\x00\x00\x00\xff"
    assert tensor_bytes(np.array(["ab", "c"])) == b"\x02\x00\x00\x00ab\x01\x00\x00\x00c"


def test_bytes_elements_are_str_like_json_unless_not_utf8() -> None:
    text = from_bytes(tensor_bytes(np.array(["é", "b"], dtype=object)), "BYTES", [2], "t")
    assert text.tolist() == ["é", "b"]
    raw = from_bytes(tensor_bytes(np.array([b"\xff", b"b"], dtype=object)), "BYTES", [2], "t")
    assert raw.tolist() == [b"\xff", b"b"]


def test_mixed_json_and_binary_inputs_keep_order() -> None:
    a, c = sample("FP32"), sample("BYTES")
    payload, tail = binary_request(a=a, c=c)
    payload["inputs"].insert(1, {"name": "b", "datatype": "INT64", "shape": [2],
                                 "data": [1, 2]})
    request = decode_request_binary(payload, tail)
    assert list(request.inputs) == ["a", "b", "c"]
    assert same(request.inputs["a"], a) and same(request.inputs["c"], c)
    assert request.inputs["b"].tolist() == [1, 2]


def test_empty_tensors() -> None:
    payload, tail = binary_request(x=np.zeros((0, 3), dtype=np.float32),
                                   s=np.empty((0,), dtype=object))
    request = decode_request_binary(payload, tail)
    assert request.inputs["x"].shape == (0, 3) and request.inputs["s"].shape == (0,)


# -- tritonclient.http: the exact bytes it sends and reads ------------------------------------

def triton_input(name: str, x: Array, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput(name, list(x.shape), datatype_of(x))
    tensor.set_data_from_numpy(x, binary_data=binary)
    return tensor


@pytest.mark.parametrize("datatype", ALL)
def test_decodes_tritonclient_request_body(datatype: str) -> None:
    x = sample(datatype)
    body, length = triton.InferenceServerClient.generate_request_body(
        [triton_input("x", x)], outputs=[triton.InferRequestedOutput("y")], request_id="r1")
    head, tail = split_body(body, length)
    assert tail == tensor_bytes(x)  # our encoder writes the very bytes tritonclient does
    payload = v2.parse_json(head)
    request = decode_request_binary(payload, tail)
    assert same(request.inputs["x"], x)
    assert (request.id, request.outputs) == ("r1", ["y"])
    assert binary_outputs(payload).select(["y"]) == {"y"}


def test_decodes_tritonclient_mixed_request() -> None:
    a, b = sample("UINT64"), sample("INT8")
    body, length = triton.InferenceServerClient.generate_request_body(
        [triton_input("a", a, binary=False), triton_input("b", b)],
        outputs=[triton.InferRequestedOutput("y", binary_data=False),
                 triton.InferRequestedOutput("z")],
        parameters={"threshold": 0.5})
    payload = v2.parse_json(split_body(body, length)[0])
    request = decode_request_binary(payload, split_body(body, length)[1])
    assert same(request.inputs["a"], a) and same(request.inputs["b"], b)
    assert request.parameters == {"threshold": 0.5}
    assert binary_outputs(payload).select(["y", "z"]) == {"z"}


def test_tritonclient_json_only_request_has_no_header_length() -> None:
    body, length = triton.InferenceServerClient.generate_request_body(
        [triton_input("a", sample("INT32"), binary=False)])
    assert length is None
    payload = v2.parse_json(split_body(body, length)[0])
    assert same(decode_request_binary(payload, b"").inputs["a"], sample("INT32"))
    # no outputs named: tritonclient asks for every output in binary
    assert binary_outputs(payload) == BinaryOutputs(default=True)


def response(**outputs: Array) -> InferenceResponse:
    return InferenceResponse("m", "2", dict(outputs), id="r1")


@pytest.mark.parametrize("datatype", ALL)
def test_tritonclient_reads_our_binary_response(datatype: str) -> None:
    x = sample(datatype)
    plain = np.array([1.0, 2.0], dtype=np.float32)
    body, length = encode_response_binary(response(x=x, plain=plain), {"x"})
    assert length is not None
    result = triton.InferResult.from_response_body(body, header_length=length)
    got = result.as_numpy("x")
    if datatype == "BYTES":
        x = np.vectorize(str.encode, otypes=[object])(x)  # tritonclient gives bytes
    assert same(got, x)
    assert same(result.as_numpy("plain"), plain)
    header = result.get_response()
    assert (header["model_name"], header["model_version"], header["id"]) == ("m", "2", "r1")
    assert result.get_output("x")["parameters"] == {"binary_data_size": len(tensor_bytes(x))}
    assert "parameters" not in result.get_output("plain")


def test_no_binary_output_is_the_json_response() -> None:
    r = response(y=sample("INT16"))
    assert encode_response_binary(r, set()) == (v2.encode_response(r), None)
    assert encode_response_binary(r, {"other"}) == (v2.encode_response(r), None)


def test_encode_rejects_non_string_bytes_elements() -> None:
    with raises(TypeError, "str or bytes", "int"):
        tensor_bytes(np.array(["a", 3], dtype=object))


# -- which outputs go binary ---------------------------------------------------------------

def test_binary_outputs_per_output_overrides_request_default() -> None:
    payload = {"parameters": {"binary_data_output": True},
               "outputs": [{"name": "a", "parameters": {"binary_data": False}}, {"name": "b"}]}
    assert binary_outputs(payload).select(["a", "b", "c"]) == {"b", "c"}
    payload["parameters"] = {}
    payload["outputs"][1]["parameters"] = {"binary_data": True}
    assert binary_outputs(payload).select(["a", "b", "c"]) == {"b"}
    assert binary_outputs({"inputs": []}).select(["a"]) == frozenset()


def test_binary_flags_do_not_break_the_json_path() -> None:
    payload = {"inputs": [{"name": "t", "datatype": "INT8", "shape": [1], "data": [1]}],
               "parameters": {"binary_data_output": False},
               "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}
    assert v2.decode_request(payload).outputs == ["y"]
    assert binary_outputs(payload).select(["y"]) == {"y"}


def test_binary_flags_must_be_booleans() -> None:
    with raises(BadRequest, "parameters.binary_data_output", "true or false", "1"):
        binary_outputs({"parameters": {"binary_data_output": 1}})
    with raises(BadRequest, "outputs[1] ('b').parameters.binary_data", "true or false", "'yes'"):
        binary_outputs({"outputs": [{"name": "a"},
                                    {"name": "b", "parameters": {"binary_data": "yes"}}]})


# -- the same request, the same errors as the JSON form ------------------------------------------

JSON_PAYLOADS: list[Any] = [
    {"inputs": [{"name": "t", "datatype": "FP32", "shape": [2], "data": [1, 2.5]}], "id": "x",
     "parameters": {"k": 1}, "outputs": [{"name": "y"}]},
    {"inputs": [{"name": "s", "datatype": "BYTES", "shape": [1, 1], "data": [["é"]]}]},
    [], {"inputs": []}, {"inputs": "x"}, {"inputs": [], "extra": 1}, {"inputs": [1]},
    {"inputs": [{"name": "t", "datatype": "FP32", "shape": [1], "data": [1]}], "id": 3},
    {"inputs": [{"name": "t", "datatype": "FP32", "shape": [1], "data": [1]}], "parameters": []},
    {"inputs": [{"name": "", "datatype": "FP32", "shape": [1], "data": [1]}]},
    {"inputs": [{"name": "t", "datatype": "FP8", "shape": [1], "data": [1]}]},
    {"inputs": [{"name": "t", "datatype": "FP32", "shape": [-1], "data": [1]}]},
    {"inputs": [{"name": "t", "datatype": "FP32", "shape": [1], "data": [1], "x": 1}]},
    {"inputs": [{"name": "t", "datatype": "INT8", "shape": [1], "data": [300]}]},
    {"inputs": [{"name": "t", "datatype": "FP32", "shape": [3], "data": [1]}]},
    {"inputs": [{"name": "t", "datatype": "FP32", "shape": [1], "data": [1]}] * 2},
    {"inputs": [{"name": "t", "datatype": "FP32", "shape": [1], "data": [1]}], "outputs": {}},
    {"inputs": [{"name": "t", "datatype": "FP32", "shape": [1], "data": [1]}],
     "outputs": [{"nom": "y"}]},
]


def decoded(decode: Any, payload: Any) -> InferenceRequest | tuple[type[Exception], str]:
    try:
        return decode(payload)
    except BadRequest as exc:
        return type(exc), exc.message


@pytest.mark.parametrize("payload", JSON_PAYLOADS)
def test_json_payloads_decode_as_v2_does(payload: Any) -> None:
    ours = decoded(lambda p: decode_request_binary(p, b""), payload)
    theirs = decoded(v2.decode_request, payload)
    if isinstance(theirs, tuple):
        assert ours == theirs
        return
    assert isinstance(ours, InferenceRequest)
    assert (ours.id, ours.parameters, ours.outputs, ours.datatypes, ours.finite) == \
        (theirs.id, theirs.parameters, theirs.outputs, theirs.datatypes, theirs.finite)
    assert ours.inputs.keys() == theirs.inputs.keys()
    for name, array in ours.inputs.items():
        assert same(array, theirs.inputs[name])
        assert [type(v) for v in array.ravel()] == [type(v) for v in theirs.inputs[name].ravel()]


# -- bad binary requests ------------------------------------------------------------------------

def test_size_that_does_not_fit_the_shape() -> None:
    payload = one("FP32", [1, 30], 100)
    with raises(InvalidInput, "inputs[0] ('t').parameters.binary_data_size",
                "shape [1, 30] of FP32 needs 120 bytes (4 per element), got 100"):
        decode_request_binary(payload, b"\x00" * 100)


@pytest.mark.parametrize("size", [-1, 1.5, "8", True, None])
def test_size_must_be_a_non_negative_integer(size: Any) -> None:
    with raises(BadRequest, "inputs[0] ('t').parameters.binary_data_size",
                "non-negative integer", f"got {size!r}"):
        decode_request_binary(one("INT8", [1], size), b"\x00")


def test_size_running_past_the_tail() -> None:
    payload = {"inputs": [one("INT8", [2], 2)["inputs"][0],
                          {**one("INT8", [4], 4)["inputs"][0], "name": "u"}]}
    with raises(BadRequest, "inputs[1] ('u').parameters.binary_data_size",
                "4 bytes from offset 2 run past the end", "(5 bytes after the JSON)"):
        decode_request_binary(payload, b"\x00" * 5)


def test_unused_trailing_bytes() -> None:
    with raises(BadRequest, "3 bytes after the JSON are unused", "add up to 2 of 5"):
        decode_request_binary(one("INT8", [2], 2), b"\x00" * 5)
    json_only = {"inputs": [{"name": "t", "datatype": "INT8", "shape": [1], "data": [1]}]}
    with raises(BadRequest, "1 bytes after the JSON are unused", "add up to 0 of 1"):
        decode_request_binary(json_only, b"\x00")


def test_data_and_size_together_or_neither() -> None:
    with raises(BadRequest, "inputs[0] ('t')", "both data and parameters.binary_data_size"):
        decode_request_binary(one("INT8", [1], 1, data=[1]), b"\x00")
    neither = {"inputs": [{"name": "t", "datatype": "INT8", "shape": [1], "parameters": {}}]}
    with raises(BadRequest, "inputs[0] ('t').data: missing", "binary_data_size"):
        decode_request_binary(neither, b"")


def test_bool_bytes_must_be_0_or_1() -> None:
    with raises(InvalidInput, "inputs[0] ('t').parameters.binary_data_size", "0 or 1", "got 2"):
        decode_request_binary(one("BOOL", [3], 3), b"\x01\x00\x02")


def bytes_tail(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(i)) + i for i in items)


@pytest.mark.parametrize(("shape", "tail", "words"), [
    ([2], bytes_tail(b"ab") + struct.pack("<I", 5) + b"abc",
     ("BYTES element 1: length 5 runs past the end (3 bytes left)",)),
    ([2], bytes_tail(b"ab") + b"\x01\x00",
     ("BYTES element 1: its 4-byte length runs past the end (2 bytes left)",)),
    ([1], bytes_tail(b"ab", b"c"), ("shape [1] needs 1 BYTES elements", "5 bytes are left over")),
    ([3], bytes_tail(b"ab", b"c"), ("shape [3] needs 3 BYTES elements, got 2",)),
])
def test_bad_bytes_elements(shape: list[int], tail: bytes, words: tuple[str, ...]) -> None:
    with raises(InvalidInput, "inputs[0] ('t').parameters.binary_data_size", *words):
        decode_request_binary(one("BYTES", shape, len(tail)), tail)


@pytest.mark.parametrize("datatype", NUMERIC)
def test_every_fixed_size_type_checks_its_byte_count(datatype: str) -> None:
    itemsize = DTYPES[datatype].itemsize
    with raises(InvalidInput, f"of {datatype} needs {2 * itemsize} bytes",
                f"got {2 * itemsize + 1}"):
        decode_request_binary(one(datatype, [2], 2 * itemsize + 1), b"\x00" * (2 * itemsize + 1))
