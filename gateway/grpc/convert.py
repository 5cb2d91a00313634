"""V2 gRPC messages <-> InferenceRequest/InferenceResponse, and GatewayError -> gRPC status.

Requests are checked by ``v2.decode_with``, so a bad gRPC request gets the words a bad
JSON request gets. Tensor data comes either typed (``InferTensorContents``, the field that
matches the datatype; FP16 has none) or raw (``raw_input_contents``, one entry per input,
laid out as in the binary REST extension); responses are raw, as Triton sends them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, MutableMapping
from typing import Any

import grpc
import numpy as np

from gateway.errors import BadRequest, GatewayError, InvalidInput
from gateway.grpc.grpc_service_pb2 import (
    InferParameter,
    InferTensorContents,
    ModelInferRequest,
    ModelInferResponse,
)
from gateway.protocol.binary import bytes_array, from_bytes, tensor_bytes
from gateway.protocol.tensors import (
    DTYPES,
    FLOAT_TYPES,
    Array,
    InferenceRequest,
    InferenceResponse,
    datatype_of,
)
from gateway.protocol.v2 import decode_with

# The typed contents field of each datatype, and the numpy type that field holds.
CONTENTS: dict[str, tuple[str, np.dtype[Any]]] = {
    "BOOL": ("bool_contents", np.dtype(np.bool_)),
    "INT8": ("int_contents", np.dtype(np.int32)),
    "INT16": ("int_contents", np.dtype(np.int32)),
    "INT32": ("int_contents", np.dtype(np.int32)),
    "INT64": ("int64_contents", np.dtype(np.int64)),
    "UINT8": ("uint_contents", np.dtype(np.uint32)),
    "UINT16": ("uint_contents", np.dtype(np.uint32)),
    "UINT32": ("uint_contents", np.dtype(np.uint32)),
    "UINT64": ("uint64_contents", np.dtype(np.uint64)),
    "FP32": ("fp32_contents", np.dtype(np.float32)),
    "FP64": ("fp64_contents", np.dtype(np.float64)),
    "BYTES": ("bytes_contents", np.dtype(object)),
}

# By HTTP status, so subclasses defined elsewhere (e.g. a 500 model failure) map too.
STATUS: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,  # a remote model's refusal of the input
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    # gRPC answers UNIMPLEMENTED for an encoding the server does not support.
    415: grpc.StatusCode.UNIMPLEMENTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
_INT64 = np.iinfo(np.int64)
_UINT64 = np.iinfo(np.uint64)


def status_of(exc: GatewayError) -> tuple[grpc.StatusCode, str]:
    """The gRPC status code and details for an error (details: the same message as HTTP)."""
    return STATUS.get(exc.status_code, grpc.StatusCode.INTERNAL), exc.message


def parameters_from_proto(params: Mapping[str, InferParameter], where: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, param in params.items():
        choice = param.WhichOneof("parameter_choice")
        if choice is None:
            raise BadRequest(f"{where}[{key!r}]: no value set; expected one of bool_param, "
                             "int64_param, uint64_param, double_param, string_param")
        values[key] = getattr(param, choice)
    return values


def parameters_to_proto(values: Mapping[str, Any],
                        target: MutableMapping[str, InferParameter]) -> None:
    """Scalars only: the message has no lists or objects."""
    for key, value in values.items():
        param = target[key]
        if isinstance(value, bool):
            param.bool_param = value
        elif isinstance(value, int) and _INT64.min <= value <= _INT64.max:
            param.int64_param = value
        elif isinstance(value, int) and 0 <= value <= _UINT64.max:
            param.uint64_param = value
        elif isinstance(value, float):
            param.double_param = value
        elif isinstance(value, str):
            param.string_param = value
        else:
            raise TypeError(f"parameter {key!r}: {value!r} has no InferParameter form")


def typed_array(contents: InferTensorContents, datatype: str, shape: list[int],
                where: str) -> Array:
    """A tensor from the typed field that matches its datatype."""
    given = [f.name for f, _ in contents.ListFields()]  # the non-empty fields
    count = math.prod(shape)
    if datatype not in CONTENTS:
        if count == 0 and not given:
            return np.empty(shape, dtype=DTYPES[datatype])
        raise InvalidInput(f"{where}: {datatype} has no typed contents field; send the "
                           "tensor in raw_input_contents")
    name, container = CONTENTS[datatype]
    others = [g for g in given if g != name]
    if others:
        raise InvalidInput(f"{where}: expected {name} for {datatype}, got {', '.join(others)}")
    values = getattr(contents, name)
    where = f"{where}.{name}"
    if len(values) != count:
        raise InvalidInput(f"{where}: shape {shape} needs {count} elements, got {len(values)}")
    if datatype == "BYTES":
        return bytes_array(list(values), shape)
    array: Array = np.array(values, dtype=container)
    dtype = DTYPES[datatype]
    if dtype != container and array.size:
        info = np.iinfo(dtype)
        lo, hi = array.min(), array.max()
        if lo < info.min or hi > info.max:
            raise InvalidInput(f"{where}: value out of range for {datatype} "
                               f"[{info.min}, {info.max}]: got {lo if lo < info.min else hi}")
    return array.astype(dtype).reshape(shape)


def decode_infer_request(request: ModelInferRequest) -> InferenceRequest:
    """Validate a ModelInferRequest and decode its tensors (model name/version: the caller's)."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise BadRequest(f"raw_input_contents: expected one entry per input "
                         f"({len(request.inputs)}), got {len(raw)}")
    inputs: list[dict[str, Any]] = []
    for i, tensor in enumerate(request.inputs):
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype,
                                 "shape": list(tensor.shape)}
        if tensor.parameters:
            entry["parameters"] = parameters_from_proto(tensor.parameters,
                                                        f"inputs[{i}].parameters")
        inputs.append(entry)
    payload: dict[str, Any] = {"inputs": inputs}
    if request.id:
        payload["id"] = request.id
    if request.parameters:
        payload["parameters"] = parameters_from_proto(request.parameters, "parameters")
    if request.outputs:
        payload["outputs"] = [{"name": out.name} for out in request.outputs]

    def read(i: int, tensor: dict[str, Any], where: str, datatype: str,
             shape: list[int]) -> tuple[Array, bool]:
        message = request.inputs[i]
        if not raw:
            return (typed_array(message.contents, datatype, shape, f"{where}.contents"),
                    datatype not in FLOAT_TYPES)
        if message.HasField("contents"):
            raise BadRequest(f"{where}.contents: must be unset when raw_input_contents is "
                             "used")
        return (from_bytes(raw[i], datatype, shape, f"raw_input_contents[{i}] "
                           f"({message.name!r})"), datatype not in FLOAT_TYPES)

    return decode_with(payload, read)


def typed_contents(array: Array) -> InferTensorContents:
    """The typed form of a tensor (FP16 has none)."""
    datatype = datatype_of(array)
    if datatype not in CONTENTS:
        raise ValueError(f"{datatype} has no typed contents field; use raw contents")
    name, _ = CONTENTS[datatype]
    values = array.ravel().tolist()
    if datatype == "BYTES":
        values = [v.encode() if isinstance(v, str) else v for v in values]
    contents = InferTensorContents()
    getattr(contents, name).extend(values)
    return contents


def encode_infer_request(request: InferenceRequest, model_name: str, model_version: str = "",
                         raw: bool = True) -> ModelInferRequest:
    """The ModelInferRequest for a request, tensors raw (as tritonclient sends) or typed."""
    message = ModelInferRequest(model_name=model_name, model_version=model_version,
                                id=request.id or "")
    parameters_to_proto(request.parameters or {}, message.parameters)
    for name, array in request.inputs.items():
        tensor = message.inputs.add(name=name, datatype=datatype_of(array), shape=array.shape)
        if raw:
            message.raw_input_contents.append(tensor_bytes(array))
        else:
            tensor.contents.CopyFrom(typed_contents(array))
    for output in request.outputs or []:
        message.outputs.add(name=output)
    return message


def encode_infer_response(response: InferenceResponse) -> ModelInferResponse:
    """The ModelInferResponse for our outputs, in raw_output_contents as Triton sends them."""
    message = ModelInferResponse(model_name=response.model_name,
                                 model_version=response.model_version, id=response.id or "")
    parameters_to_proto(response.parameters or {}, message.parameters)
    for name, array in response.outputs.items():
        message.outputs.add(name=name, datatype=datatype_of(array), shape=array.shape)
        message.raw_output_contents.append(tensor_bytes(array))
    return message


def decode_infer_response(message: ModelInferResponse) -> InferenceResponse:
    """Our view of a ModelInferResponse (raw or typed), as a gRPC backend would read one."""
    raw = message.raw_output_contents
    if raw and len(raw) != len(message.outputs):
        raise BadRequest(f"raw_output_contents: expected one entry per output "
                         f"({len(message.outputs)}), got {len(raw)}")
    outputs: dict[str, Array] = {}
    for i, tensor in enumerate(message.outputs):
        where = f"outputs[{i}] ({tensor.name!r})"
        if tensor.datatype not in DTYPES:
            raise BadRequest(f"{where}.datatype: expected one of {sorted(DTYPES)}, got "
                             f"{tensor.datatype!r}")
        shape = list(tensor.shape)
        if any(d < 0 for d in shape):
            raise BadRequest(f"{where}.shape: expected non-negative integers, got {shape}")
        outputs[tensor.name] = (
            from_bytes(raw[i], tensor.datatype, shape, f"raw_output_contents[{i}]") if raw
            else typed_array(tensor.contents, tensor.datatype, shape, f"{where}.contents"))
    return InferenceResponse(message.model_name, message.model_version, outputs,
                             id=message.id or None,
                             parameters=parameters_from_proto(message.parameters, "parameters")
                             or None)
