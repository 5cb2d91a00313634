"""Binary tensor data extension of V2 REST (KServe/Triton): a JSON header, then raw tensors.

A body is ``Inference-Header-Content-Length`` bytes of JSON followed by the bytes of each
tensor whose ``parameters`` carry ``binary_data_size``, in the order of the tensors: row-major,
little-endian, no padding; BOOL one byte (0 or 1); each BYTES element a 4-byte little-endian
length and then its bytes. Outputs go back binary when the request asks, per output
(``outputs[i].parameters.binary_data``) or for all (``parameters.binary_data_output``).

Requests are checked by ``v2.decode_with`` (``v2.decode_request``'s checks, with the data of
each input read here), so a bad binary request gets the words a bad JSON request gets.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from gateway.errors import BadRequest, InvalidInput
from gateway.protocol.tensors import (
    DTYPES,
    FLOAT_TYPES,
    Array,
    InferenceRequest,
    InferenceResponse,
    datatype_of,
)
from gateway.protocol.v2 import decode_with, json_tensor, tensor_json

HEADER_NAME = "Inference-Header-Content-Length"
_LENGTH = struct.Struct("<I")

def split_body(body: bytes, header_length: bytes | str | int | None) -> tuple[bytes, bytes]:
    """(JSON header, binary tail) of a body; ``header_length`` is the raw
    Inference-Header-Content-Length value, None when the request has none (all JSON)."""
    if header_length is None:
        return body, b""
    if isinstance(header_length, int) and not isinstance(header_length, bool):
        length = header_length
    else:
        text = (header_length.decode("latin-1") if isinstance(header_length, bytes)
                else str(header_length)).strip()
        digits = text.removeprefix("-")
        if not (digits.isascii() and digits.isdigit()):
            raise BadRequest(f"{HEADER_NAME}: expected an integer byte count, got {text!r}")
        length = int(text)
    if length <= 0:
        raise BadRequest(f"{HEADER_NAME}: expected a positive byte count (the JSON header's "
                         f"length), got {length}")
    if length > len(body):
        raise BadRequest(f"{HEADER_NAME}: {length} is larger than the body "
                         f"({len(body)} bytes)")
    return body[:length], body[length:]


def bytes_array(items: list[bytes], shape: list[int]) -> Array:
    """BYTES elements as str when all are UTF-8, as the JSON form gives them; else as bytes."""
    array: Array = np.empty(len(items), dtype=object)
    try:
        array[:] = [item.decode() for item in items]
    except UnicodeDecodeError:
        array[:] = items
    return array.reshape(shape)


def _bytes_elements(data: memoryview, shape: list[int], where: str) -> Array:
    count = math.prod(shape)
    size = len(data)
    items: list[bytes] = []
    offset = 0
    while offset < size:
        k = len(items)
        if k == count:
            raise InvalidInput(f"{where}: shape {shape} needs {count} BYTES elements; "
                               f"{size - offset} bytes are left over after them")
        if offset + 4 > size:
            raise InvalidInput(f"{where}: BYTES element {k}: its 4-byte length runs past the "
                               f"end ({size - offset} bytes left)")
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += 4
        if offset + length > size:
            raise InvalidInput(f"{where}: BYTES element {k}: length {length} runs past the "
                               f"end ({size - offset} bytes left)")
        items.append(bytes(data[offset:offset + length]))
        offset += length
    if len(items) != count:
        raise InvalidInput(f"{where}: shape {shape} needs {count} BYTES elements, got "
                           f"{len(items)}")
    return bytes_array(items, shape)


def from_bytes(data: bytes | memoryview, datatype: str, shape: list[int], where: str) -> Array:
    """One tensor from its binary form (a new, writable, native-order array); ``where`` is
    the field that errors name."""
    view = memoryview(data)
    if datatype == "BYTES":
        return _bytes_elements(view, shape, where)
    dtype = DTYPES[datatype]
    needs = math.prod(shape) * dtype.itemsize
    if len(view) != needs:
        raise InvalidInput(f"{where}: shape {shape} of {datatype} needs {needs} bytes "
                           f"({dtype.itemsize} per element), got {len(view)}")
    if datatype == "BOOL":
        raw: Array = np.frombuffer(view, dtype=np.uint8)
        if raw.size and int(raw.max()) > 1:
            raise InvalidInput(f"{where}: BOOL elements must be bytes 0 or 1, got "
                               f"{int(raw.max())}")
        return raw.astype(np.bool_).reshape(shape)
    return np.frombuffer(view, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)


def tensor_bytes(array: Array) -> bytes:
    """The binary form of one tensor."""
    if array.dtype.kind in "OSU":
        parts: list[bytes] = []
        for value in array.ravel().tolist():
            if isinstance(value, str):
                value = value.encode()
            elif not isinstance(value, bytes):
                raise TypeError(f"BYTES element must be str or bytes, got "
                                f"{type(value).__name__}")
            parts += (_LENGTH.pack(len(value)), value)
        return b"".join(parts)
    little = array.dtype.newbyteorder("<")
    return np.ascontiguousarray(array, dtype=little).tobytes()


class _Tail:
    """Hands out the binary tail to the inputs that declare ``binary_data_size``, in order."""

    def __init__(self, tail: bytes) -> None:
        self.view = memoryview(tail)
        self.offset = 0

    def read(self, i: int, tensor: dict[str, Any], where: str, datatype: str,
             shape: list[int]) -> tuple[Array, bool]:
        params = tensor.get("parameters")
        if not isinstance(params, dict) or "binary_data_size" not in params:
            if "data" not in tensor:
                raise BadRequest(f"{where}.data: missing (and no "
                                 f"parameters.binary_data_size)")
            return json_tensor(i, tensor, where, datatype, shape)
        if "data" in tensor:
            raise BadRequest(f"{where}: both data and parameters.binary_data_size; "
                             f"expected one")
        where = f"{where}.parameters.binary_data_size"
        size = params["binary_data_size"]
        if type(size) is not int or size < 0:
            raise BadRequest(f"{where}: expected a non-negative integer, got {size!r}")
        end = self.offset + size
        if end > len(self.view):
            raise BadRequest(f"{where}: {size} bytes from offset {self.offset} run past the "
                             f"end of the binary data ({len(self.view)} bytes after the JSON)")
        array = from_bytes(self.view[self.offset:end], datatype, shape, where)
        self.offset = end
        return array, datatype not in FLOAT_TYPES  # binary floats can hold NaN and inf

    def finish(self) -> None:
        unused = len(self.view) - self.offset
        if unused:
            raise BadRequest(f"binary data: {unused} bytes after the JSON are unused (the "
                             f"inputs' binary_data_size add up to {self.offset} of "
                             f"{len(self.view)})")


def decode_request_binary(payload: Any, tail: bytes) -> InferenceRequest:
    """Validate a V2 request whose inputs may be binary (``tail``: the bytes after the JSON
    header); the same request and errors as ``v2.decode_request`` for the JSON form."""
    reader = _Tail(tail)
    request = decode_with(payload, reader.read)
    reader.finish()
    return request


@dataclass(frozen=True, slots=True)
class BinaryOutputs:
    """Which outputs go back as binary data: per-output choices over the request default."""

    default: bool = False
    chosen: Mapping[str, bool] = field(default_factory=dict)

    def select(self, names: Iterable[str]) -> frozenset[str]:
        return frozenset(n for n in names if self.chosen.get(n, self.default))


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"{where}: expected true or false, got {value!r}")
    return value


def binary_outputs(payload: Any) -> BinaryOutputs:
    """The binary output choices of a request that ``decode_request`` accepted."""
    default = False
    params = payload.get("parameters") if isinstance(payload, dict) else None
    if isinstance(params, dict) and "binary_data_output" in params:
        default = _flag(params["binary_data_output"], "parameters.binary_data_output")
    chosen: dict[str, bool] = {}
    outputs = payload.get("outputs") if isinstance(payload, dict) else None
    for i, out in enumerate(outputs if isinstance(outputs, list) else []):
        if not isinstance(out, dict) or not isinstance(out.get("name"), str):
            continue  # decode_request reports it
        out_params = out.get("parameters")
        if isinstance(out_params, dict) and "binary_data" in out_params:
            where = f"outputs[{i}] ({out['name']!r}).parameters.binary_data"
            chosen[out["name"]] = _flag(out_params["binary_data"], where)
        if isinstance(out_params, dict) and out_params.get("classification"):
            raise BadRequest(f"outputs[{i}] ({out['name']!r}).parameters.classification: the "
                             "classification extension is not supported; ask for the output "
                             "itself (a classifier's scores output has every class's score)")
    return BinaryOutputs(default, chosen)


def encode_response_binary(response: InferenceResponse, binary: Collection[str]
                           ) -> tuple[bytes, int | None]:
    """(body, JSON header length) with the outputs named in ``binary`` as binary data; with
    none of them binary, the plain JSON body and None, as ``v2.encode_response``."""
    body: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
    }
    if response.id is not None:
        body["id"] = response.id
    if response.parameters:
        body["parameters"] = response.parameters
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, array in response.outputs.items():
        if name not in binary:
            outputs.append(tensor_json(name, array))
            continue
        raw = tensor_bytes(array)
        outputs.append({"name": name, "datatype": datatype_of(array),
                        "shape": list(array.shape), "parameters": {"binary_data_size": len(raw)}})
        chunks.append(raw)
    body["outputs"] = outputs
    header = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)
