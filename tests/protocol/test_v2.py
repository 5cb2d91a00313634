"""gateway/protocol/v2.py: JSON -> tensors (strict by datatype) and tensors -> JSON."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest

from gateway.errors import BadRequest, InvalidInput
from gateway.protocol.tensors import DTYPES, InferenceResponse
from gateway.protocol.v2 import decode_request, encode_response, parse_json, tensor_json, to_array

INTS = ["UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"]
FLOATS = ["FP16", "FP32", "FP64"]
# np.array([0, 2**64 - 1]) is float64 (int64 and uint64 have no common integer type); these
# cases check that the decoder keeps such values exact (they were once refused).


def with_big_ints_bug(names: list[str], buggy: tuple[str, ...]) -> list[Any]:
    return list(names)


def request(datatype: str, data: Any, shape: list[int], **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "t", "datatype": datatype, "shape": shape, "data": data}],
            **extra}


@contextlib.contextmanager
def raises(exc: type[Exception], *words: str) -> Iterator[None]:
    """pytest.raises plus: the message contains every word."""
    with pytest.raises(exc) as info:
        yield
    for word in words:
        assert word in str(info.value), (word, str(info.value))


# -- to_array: every datatype ----------------------------------------------------------------

@pytest.mark.parametrize("datatype", with_big_ints_bug(INTS, ("UINT64",)))
def test_integers_decode_to_their_dtype(datatype: str) -> None:
    info = np.iinfo(DTYPES[datatype])
    data = [[int(info.min), 0], [1, int(info.max)]]
    array = to_array(data, datatype, [2, 2], "t")
    assert array.dtype == DTYPES[datatype]
    assert array.shape == (2, 2)
    assert array.tolist() == data


@pytest.mark.parametrize("datatype", with_big_ints_bug(INTS, ("INT64",)))
def test_integers_out_of_range(datatype: str) -> None:
    info = np.iinfo(DTYPES[datatype])
    for bad in (int(info.min) - 1, int(info.max) + 1):
        if not -(2**63) <= bad < 2**64:
            continue  # JSON would carry it as a float, tested below
        with raises(InvalidInput, "t.data", "out of range", datatype, str(bad)):
            to_array([0, bad], datatype, [2], "t")


@pytest.mark.parametrize("datatype", INTS)
def test_integers_refuse_floats_and_strings(datatype: str) -> None:
    with raises(InvalidInput, "t.data", f"expected {datatype}", "non-integer"):
        to_array([1, 2.5], datatype, [2], "t")
    with raises(InvalidInput, "t.data", f"expected {datatype}", "strings"):
        to_array(["1", "2"], datatype, [2], "t")


def test_int8_range_messages() -> None:
    assert to_array([-128, 127], "INT8", [2], "t").tolist() == [-128, 127]
    with raises(InvalidInput, "INT8", "[-128, 127]", "got 128"):
        to_array([127, 128], "INT8", [2], "t")
    with raises(InvalidInput, "INT8", "got -129"):
        to_array([-129], "INT8", [1], "t")
    with raises(InvalidInput, "UINT8", "got -1"):
        to_array([-1, 5], "UINT8", [2], "t")


def test_uint64_alone_and_int64_limits() -> None:
    big = 2**64 - 1
    assert to_array(orjson.loads(f"[{big}]"), "UINT64", [1], "t").tolist() == [big]
    with raises(InvalidInput, "INT64", "out of range", str(2**63)):
        to_array([2**63], "INT64", [1], "t")


def test_uint64_takes_its_whole_range() -> None:
    big = 2**64 - 1
    array = to_array(orjson.loads(f"[0, {big}]"), "UINT64", [2], "t")
    assert array.dtype == np.uint64
    assert array.tolist() == [0, big]


@pytest.mark.parametrize("datatype", FLOATS)
def test_floats_decode_and_take_integers(datatype: str) -> None:
    array = to_array([[0.5, -2], [3, 1e-3]], datatype, [2, 2], "t")
    assert array.dtype == DTYPES[datatype]
    np.testing.assert_allclose(array, [[0.5, -2], [3, 1e-3]], rtol=1e-3)


@pytest.mark.parametrize("datatype", FLOATS)
def test_floats_refuse_strings_and_nulls(datatype: str) -> None:
    with raises(InvalidInput, f"expected {datatype}", "strings"):
        to_array([1.0, "2"], datatype, [2], "t")
    with raises(InvalidInput, f"expected {datatype}"):
        to_array([1.0, None], datatype, [2], "t")


@pytest.mark.parametrize(("datatype", "value"), [("FP16", 70000.0), ("FP16", 100000),
                                                 ("FP32", 1e39), ("FP32", -1e300)])
def test_floats_beyond_the_datatype_range(datatype: str, value: float) -> None:
    """Regression: the cast overflowed to inf with a numpy RuntimeWarning."""
    with raises(InvalidInput, "t.data", "out of range", datatype):
        to_array([1.0, value], datatype, [2], "t")


def test_fp16_precision() -> None:
    array = to_array([65504.0, 1e-4, 0.1], "FP16", [3], "t")
    assert array.dtype == np.float16
    assert array.tolist() == [65504.0, pytest.approx(1e-4, rel=1e-3), pytest.approx(0.1, rel=1e-3)]


def test_fp64_keeps_full_precision() -> None:
    assert to_array([0.1 + 0.2], "FP64", [1], "t").tolist() == [0.1 + 0.2]


def test_bool_is_strict() -> None:
    array = to_array([[True, False]], "BOOL", [1, 2], "t")
    assert array.dtype == np.bool_ and array.tolist() == [[True, False]]
    for bad, word in (([1, 0], "integers"), ([True, 0], "integers"), ([0.0], "non-integer"),
                      (["true"], "strings"), ([None], "BOOL")):
        with raises(InvalidInput, "expected BOOL", word):
            to_array(bad, "BOOL", [len(bad)], "t")


def test_bytes() -> None:
    array = to_array([["a", "é"], ["", "x y"]], "BYTES", [2, 2], "t")
    assert array.dtype == object
    assert array.tolist() == [["a", "é"], ["", "x y"]]
    for bad, got in (([1], "int"), ([None], "null"), ([["a"], [2.5]], "float")):
        with raises(InvalidInput, "BYTES elements must be strings", got):
            to_array(bad, "BYTES", [1], "t")


def test_data_must_be_an_array() -> None:
    for bad, got in ((1.5, "float"), ("abc", "str"), ({"a": 1}, "dict"), (None, "null")):
        with raises(InvalidInput, "t.data", "JSON array", got):
            to_array(bad, "FP32", [1], "t")


def test_element_count_and_ragged() -> None:
    with raises(InvalidInput, "shape [2, 3]", "6 elements", "got 5"):
        to_array([1, 2, 3, 4, 5], "FP32", [2, 3], "t")
    with raises(InvalidInput, "ragged", "[2, 2]"):
        to_array([[1, 2], [3]], "FP32", [2, 2], "t")
    with raises(InvalidInput, "ragged"):
        to_array([[1, 2], 3], "FP32", [3], "t")


def test_flat_and_nested_are_the_same() -> None:
    nested = to_array([[1, 2, 3], [4, 5, 6]], "INT32", [2, 3], "t")
    flat = to_array([1, 2, 3, 4, 5, 6], "INT32", [2, 3], "t")
    np.testing.assert_array_equal(nested, flat)


def test_nested_data_of_another_rank() -> None:
    with raises(InvalidInput, "nested", "[2, 2]", "[4]"):
        to_array([[1, 2], [3, 4]], "FP32", [4], "t")


def test_nested_data_of_the_same_rank_but_other_dims() -> None:
    """Regression: only the rank was compared; [3, 2] nested data was reshaped to [2, 3]."""
    with raises(InvalidInput, "nested", "[3, 2]", "[2, 3]"):
        to_array([[1, 2], [3, 4], [5, 6]], "FP32", [2, 3], "t")


def test_nested_bytes_must_match_the_shape() -> None:
    with raises(InvalidInput, "nested"):
        to_array([["a", "b", "c"], ["d", "e", "f"]], "BYTES", [3, 2], "t")


def test_empty_tensors() -> None:
    assert to_array([], "FP32", [0, 30], "t").shape == (0, 30)
    assert to_array([], "BOOL", [0], "t").dtype == np.bool_
    assert to_array([], "BYTES", [0], "t").shape == (0,)


def test_scalar_shape() -> None:
    assert to_array([7], "INT64", [], "t").shape == ()


# -- decode_request --------------------------------------------------------------------------

def test_decode_request_full() -> None:
    payload = {"id": "r1", "parameters": {"a": 1},
               "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2],
                           "parameters": {"content_type": "np"}},
                          {"name": "y", "datatype": "BYTES", "shape": [1], "data": ["s"]}],
               "outputs": [{"name": "out", "parameters": {}}]}
    req = decode_request(payload)
    assert req.id == "r1"
    assert req.parameters == {"a": 1}
    assert req.outputs == ["out"]
    assert list(req.inputs) == ["x", "y"]
    assert req.datatypes == {"x": "FP32", "y": "BYTES"}
    assert req.inputs["x"].dtype == np.float32 and req.inputs["x"].shape == (1, 2)
    assert req.rows == 1


@pytest.mark.parametrize(("payload", "exc", "words"), [
    ([], BadRequest, ("request body", "JSON object", "list")),
    ({"inputs": [], "x": 1}, BadRequest, ("unknown field", "'x'")),
    ({"id": 3, "inputs": []}, BadRequest, ("id", "string", "int")),
    ({"parameters": "p", "inputs": []}, BadRequest, ("parameters", "object", "str")),
    ({"inputs": {}}, BadRequest, ("inputs", "non-empty array", "dict")),
    ({"inputs": []}, BadRequest, ("inputs", "empty array")),
    ({"inputs": [1]}, BadRequest, ("inputs[0]", "object", "int")),
    ({"inputs": [{"name": "", "datatype": "FP32", "shape": [1], "data": [1]}]}, BadRequest,
     ("inputs[0].name", "non-empty string")),
    ({"inputs": [{"name": "t", "datatype": "F32", "shape": [1], "data": [1]}]}, BadRequest,
     ("inputs[0] ('t').datatype", "FP32", "'F32'")),
    ({"inputs": [{"name": "t", "datatype": "FP32", "shape": "1", "data": [1]}]}, BadRequest,
     ("inputs[0] ('t').shape", "non-negative integers", "'1'")),
    ({"inputs": [{"name": "t", "datatype": "FP32", "shape": [True], "data": [1]}]}, BadRequest,
     ("shape", "[True]")),
    ({"inputs": [{"name": "t", "datatype": "FP32", "shape": [1]}]}, BadRequest,
     ("inputs[0] ('t').data", "missing")),
    ({"inputs": [{"name": "t", "datatype": "FP32", "shape": [1], "data": [1], "x": 0}]},
     BadRequest, ("inputs[0]", "unknown field", "'x'")),
    ({"inputs": [{"name": "t", "datatype": "FP32", "shape": [1], "data": [1]}] * 2},
     BadRequest, ("'t'", "twice")),
    ({"inputs": [{"name": "t", "datatype": "FP32", "shape": [1], "data": ["a"]}]},
     InvalidInput, ("inputs[0] ('t').data", "FP32", "strings")),
    (request("FP32", [1], [1], outputs="label"), BadRequest, ("outputs", "array", "str")),
    (request("FP32", [1], [1], outputs=[{"nom": "x"}]), BadRequest,
     ("outputs[0]", "string 'name'")),
    (request("FP32", [1], [1] * 33), BadRequest, ("shape", "at most")),
])
def test_decode_request_errors(payload: Any, exc: type[Exception], words: tuple[str, ...]
                               ) -> None:
    with raises(exc, *words):
        decode_request(payload)


def test_invalid_input_is_a_bad_request() -> None:
    assert issubclass(InvalidInput, BadRequest)
    assert (BadRequest("x").status_code, InvalidInput("x").code) == (400, "invalid_input")


def test_parse_json() -> None:
    assert parse_json(b'{"a": [1, 2.5]}') == {"a": [1, 2.5]}
    with raises(BadRequest, "empty"):
        parse_json(b"")
    with raises(BadRequest, "malformed JSON", "line 1"):
        parse_json(b'{"a": ')
    with raises(BadRequest, "malformed JSON", "infinity"):
        parse_json(b"[1e999]")
    with raises(BadRequest, "malformed JSON"):
        parse_json(b"[NaN]")
    with raises(BadRequest, "malformed JSON"):
        parse_json(b"\xff")


# -- encode_response -------------------------------------------------------------------------

def decode_outputs(body: dict[str, Any]) -> dict[str, np.ndarray]:
    """The client side: what a V2 client would rebuild from the response."""
    return {o["name"]: np.array(o["data"], dtype=DTYPES[o["datatype"]]).reshape(o["shape"])
            for o in body["outputs"]}


@pytest.mark.parametrize("datatype", with_big_ints_bug([*INTS, *FLOATS, "BOOL"], ("UINT64",)))
def test_encode_response_round_trips(datatype: str) -> None:
    dtype = DTYPES[datatype]
    if datatype == "BOOL":
        array = np.array([[True, False, True], [False, False, True]])
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        array = np.array([[info.min, 0, 1], [2, 3, info.max]], dtype=dtype)
    else:
        array = np.array([[0.1, -2.5, 1e-3], [3.25, 0, 1000]], dtype=dtype)
    body = orjson.loads(encode_response(InferenceResponse("m", "1", {"out": array}, id="r")))
    assert (body["model_name"], body["model_version"], body["id"]) == ("m", "1", "r")
    assert body["outputs"][0]["datatype"] == datatype
    assert body["outputs"][0]["shape"] == [2, 3]
    assert isinstance(body["outputs"][0]["data"], list)
    assert len(body["outputs"][0]["data"]) == 6  # flat
    back = decode_outputs(body)["out"]
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, array)
    # and the request decoder reads the same tensor back
    again = to_array(body["outputs"][0]["data"], datatype, body["outputs"][0]["shape"], "t")
    np.testing.assert_array_equal(again, array)


def test_encode_response_float32_is_exact() -> None:
    rng = np.random.default_rng(0)
    array = rng.random((50, 2), dtype=np.float32)
    body = orjson.loads(encode_response(InferenceResponse("m", "1", {"p": array})))
    np.testing.assert_array_equal(decode_outputs(body)["p"], array)


def test_encode_response_bytes_and_layout() -> None:
    outputs = {"s": np.array([b"ab", "cd"], dtype=object),
               "t": np.arange(6, dtype=np.int64).reshape(2, 3).T}  # not C-contiguous
    body = orjson.loads(encode_response(InferenceResponse("m", "2", outputs,
                                                          parameters={"k": 1})))
    assert "id" not in body
    assert body["parameters"] == {"k": 1}
    s, t = body["outputs"]
    assert (s["datatype"], s["data"], s["shape"]) == ("BYTES", ["ab", "cd"], [2])
    assert t["shape"] == [3, 2]
    assert t["data"] == [0, 3, 1, 4, 2, 5]  # row-major order of the transposed view


def test_encode_response_keeps_output_order() -> None:
    outputs = {"z": np.zeros(1), "a": np.ones(1)}
    body = orjson.loads(encode_response(InferenceResponse("m", "1", outputs)))
    assert [o["name"] for o in body["outputs"]] == ["z", "a"]


def test_tensor_json_rejects_unknown_dtypes() -> None:
    with pytest.raises(TypeError, match="complex64"):
        tensor_json("c", np.zeros(1, dtype=np.complex64))
