"""Open Inference Protocol V2 (KServe/Triton/MLServer REST) <-> InferenceRequest/Response."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from gateway.errors import BadRequest, InvalidInput
from gateway.protocol.tensors import DTYPES, Array, InferenceRequest, InferenceResponse, datatype_of

MAX_RANK = 32  # numpy's limit is 64; no model takes more than a handful
# Which inferred numpy kinds each target kind takes: JSON booleans only for BOOL.
_NUMERIC_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}
_REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs"})
_INPUT_KEYS = frozenset({"name", "shape", "datatype", "parameters", "data"})


def parse_json(body: bytes) -> Any:
    """orjson.loads with a 400 that says where the JSON broke."""
    if not body:
        raise BadRequest("request body is empty: expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _big_integers(data: Any, raw: Array, dtype: np.dtype[Any], datatype: str,
                  where: str) -> Array:
    """numpy reads ints past 2**63 mixed with others as float64; keep them exact."""
    values = np.array(data, dtype=object).ravel().tolist()
    if not all(type(v) is int for v in values):
        return raw  # real non-integers: reported by the caller
    info = np.iinfo(dtype)
    for v in values:
        if not info.min <= v <= info.max:
            raise InvalidInput(f"{where}.data: value out of range for {datatype} "
                               f"[{info.min}, {info.max}]: got {v}")
    return np.array(data, dtype=dtype)


def to_array(data: Any, datatype: str, shape: list[int], where: str) -> Array:
    """Convert V2 ``data`` (flat or nested) to an array of ``shape``, strictly by datatype."""
    dtype = DTYPES[datatype]
    if not isinstance(data, list):
        raise InvalidInput(f"{where}.data: expected a JSON array, got {_type_name(data)}")
    if datatype == "BYTES":
        try:
            raw: Array = np.array(data, dtype=object)
        except ValueError:
            raise InvalidInput(f"{where}.data: nested lists are ragged; expected shape {shape}")\
                from None
        for value in raw.ravel():
            if not isinstance(value, str):
                raise InvalidInput(f"{where}.data: BYTES elements must be strings, got "
                                   f"{_type_name(value)}")
    else:
        try:
            raw = np.array(data)
        except ValueError:
            raise InvalidInput(f"{where}.data: nested lists are ragged; expected shape {shape}")\
                from None
        if raw.dtype.kind == "f" and dtype.kind in "iu":
            raw = _big_integers(data, raw, dtype, datatype, where)
        allowed = _NUMERIC_KINDS.get(dtype.kind, "")
        if raw.dtype.kind not in allowed:
            got = "ragged or mixed values" if raw.dtype.kind == "O" else f"{raw.dtype.kind!r}"
            got = {"U": "strings", "b": "booleans", "f": "non-integer numbers",
                   "i": "integers", "u": "integers"}.get(raw.dtype.kind, got)
            if raw.size == 0:
                raw = raw.astype(dtype)
            else:
                raise InvalidInput(f"{where}.data: expected {datatype} values, got {got}")
        if dtype.kind in "iu" and raw.size:
            info = np.iinfo(dtype)
            lo, hi = raw.min(), raw.max()
            if lo < info.min or hi > info.max:
                raise InvalidInput(f"{where}.data: value out of range for {datatype} "
                                   f"[{info.min}, {info.max}]: got {lo if lo < info.min else hi}")
        if raw.dtype != dtype:
            try:
                with np.errstate(over="raise"):
                    raw = raw.astype(dtype)
            except FloatingPointError:
                raise InvalidInput(f"{where}.data: value out of range for {datatype}") from None
    expected = math.prod(shape)
    if raw.size != expected:
        raise InvalidInput(f"{where}: shape {shape} needs {expected} elements, got {raw.size}")
    if raw.ndim > 1 and list(raw.shape) != shape:
        raise InvalidInput(f"{where}.data: nested data has shape {list(raw.shape)}, expected "
                           f"{shape} (or send it flat)")
    try:
        return raw.reshape(shape)
    except ValueError:  # an empty tensor whose other dimensions numpy cannot address
        raise InvalidInput(f"{where}: shape {shape} is too large to represent") from None


# (index, tensor object, where, datatype, shape) -> (array, finite: no NaN/inf possible)
TensorReader = Callable[[int, dict[str, Any], str, str, list[int]], tuple[Array, bool]]


def json_tensor(i: int, tensor: dict[str, Any], where: str, datatype: str,
                shape: list[int]) -> tuple[Array, bool]:
    """The JSON form's reader: ``data``, strictly by datatype (JSON has no NaN or inf;
    overflow is refused by ``to_array``)."""
    if "data" not in tensor:
        params = tensor.get("parameters")
        if isinstance(params, dict) and "binary_data_size" in params:
            raise BadRequest(f"{where}.parameters.binary_data_size: binary data needs the "
                             "Inference-Header-Content-Length header (the JSON header's "
                             "length), and the request has none")
        raise BadRequest(f"{where}.data: missing")
    return to_array(tensor["data"], datatype, shape, where), True


def decode_request(payload: Any) -> InferenceRequest:
    """Validate the V2 request JSON and decode its tensors."""
    return decode_with(payload, json_tensor)


def decode_with(payload: Any, read: TensorReader) -> InferenceRequest:
    """The V2 request's checks and messages, with each input's data read by ``read``: every
    wire form (JSON, the binary extension, gRPC) reports a bad request with the same words."""
    if not isinstance(payload, dict):
        raise BadRequest(f"request body: expected a JSON object, got {_type_name(payload)}")
    unknown = payload.keys() - _REQUEST_KEYS
    if unknown:
        raise BadRequest(f"request: unknown field(s) {sorted(unknown)}; expected "
                         f"{sorted(_REQUEST_KEYS)}")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f"id: expected a string, got {_type_name(request_id)}")
    parameters = payload.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise BadRequest(f"parameters: expected an object, got {_type_name(parameters)}")
    raw_inputs = payload.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequest(f"inputs: expected a non-empty array of tensors, got "
                         f"{_type_name(raw_inputs) if raw_inputs != [] else 'an empty array'}")
    inputs: dict[str, Array] = {}
    datatypes: dict[str, str] = {}
    finite = True
    for i, tensor in enumerate(raw_inputs):
        where = f"inputs[{i}]"
        if not isinstance(tensor, dict):
            raise BadRequest(f"{where}: expected an object, got {_type_name(tensor)}")
        extra = tensor.keys() - _INPUT_KEYS
        if extra:
            raise BadRequest(f"{where}: unknown field(s) {sorted(extra)}")
        name = tensor.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest(f"{where}.name: expected a non-empty string, got {_type_name(name)}")
        where = f"inputs[{i}] ({name!r})"
        if name in inputs:
            raise BadRequest(f"{where}: input {name!r} given twice")
        datatype = tensor.get("datatype")
        if datatype not in DTYPES:
            raise BadRequest(f"{where}.datatype: expected one of {sorted(DTYPES)}, got "
                             f"{datatype!r}")
        shape = tensor.get("shape")
        if (not isinstance(shape, list) or len(shape) > MAX_RANK
                or not all(type(d) is int and d >= 0 for d in shape)):
            raise BadRequest(f"{where}.shape: expected an array of at most {MAX_RANK} "
                             f"non-negative integers, got {shape!r}")
        inputs[name], is_finite = read(i, tensor, where, datatype, shape)
        datatypes[name] = datatype
        finite = finite and is_finite
    outputs = None
    raw_outputs = payload.get("outputs")
    if raw_outputs is not None:
        if not isinstance(raw_outputs, list):
            raise BadRequest(f"outputs: expected an array, got {_type_name(raw_outputs)}")
        outputs = []
        for i, out in enumerate(raw_outputs):
            if not isinstance(out, dict) or not isinstance(out.get("name"), str):
                raise BadRequest(f"outputs[{i}]: expected an object with a string 'name', got "
                                 f"{out!r}")
            outputs.append(out["name"])
    return InferenceRequest(inputs=inputs, id=request_id, parameters=parameters,
                            outputs=outputs, datatypes=datatypes, finite=finite)


def tensor_json(name: str, array: Array) -> dict[str, Any]:
    """One V2 output tensor; numeric data stays a numpy array for orjson to serialise."""
    datatype = datatype_of(array)
    if datatype == "BYTES":
        data: Any = [v.decode() if isinstance(v, bytes) else v for v in array.ravel().tolist()]
    elif not array.flags.c_contiguous:
        data = np.ascontiguousarray(array).ravel()
    else:
        data = array.ravel()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def encode_response(response: InferenceResponse) -> bytes:
    body: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
    }
    if response.id is not None:
        body["id"] = response.id
    if response.parameters:
        body["parameters"] = response.parameters
    body["outputs"] = [tensor_json(n, a) for n, a in response.outputs.items()]
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
