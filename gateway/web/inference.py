"""V2 infer (JSON, or the binary tensor data extension) and the simple /predict endpoint:
HTTP in, Service call, HTTP out."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.errors import BadRequest, GatewayError, NotFound
from gateway.protocol import binary, simple, v2
from gateway.protocol.binary import BinaryOutputs
from gateway.protocol.tensors import InferenceRequest, InferenceResponse
from gateway.runtime import Runtime
from gateway.service import Answer, Call, Target, routing_call
from gateway.snapshot import Deployment, Snapshot
from gateway.web.http import check_media_type, error_headers, read_body_raw, send_json


@functools.lru_cache(maxsize=1024)
def answer_headers(model: str, version: str, variant: str | None
                   ) -> list[tuple[bytes, bytes]]:
    """Encoded once per (model, version, variant), not per request."""
    headers = [(b"x-shadowgate-model", model.encode()),
               (b"x-shadowgate-version", version.encode())]
    if variant is not None:
        headers.append((b"x-shadowgate-variant", variant.encode()))
    return headers


Headers = list[tuple[bytes, bytes]]
# (body, the request's headers, target) -> (request, how to answer it: the encoder's choice)
Decoder = Callable[[bytes, dict[bytes, bytes], Target], tuple[InferenceRequest, Any]]
# (answer, request, call, choice) -> (body, extra headers, content type)
Encoder = Callable[[Answer, InferenceRequest, Call, Any], tuple[bytes, Headers, bytes]]
JSON = b"application/json"
OCTETS = b"application/octet-stream"
BINARY_HEADER = b"inference-header-content-length"


async def serve(scope: Scope, receive: Receive, send: Send, name: str | None,
                version: str | None,
                decode: Decoder, encode: Encoder) -> None:
    """One inference request, as raw ASGI: this is the hot path, so no Request object.

    The caller's token is checked first (when inference needs one), then ``name`` (None:
    /predict with no default deployment). The request is served on the snapshot it began
    on, and counted once when done (``Service.count_success`` / ``count_failure``); a failure
    is always written to the access log, and names a model (``x-shadowgate-model``) only
    when one ran.
    """
    runtime: Runtime = scope["app"].state.runtime
    service = runtime.service
    start = time.perf_counter()
    headers = dict(scope["headers"])
    snap = service.snapshot
    target = None
    runtime.in_flight.enter()
    try:
        if runtime.inference_check is not None:  # only when an inference token is configured
            runtime.inference_check(headers.get(b"authorization"))
        if name is None:
            raise NotFound(f"several deployments {sorted(snap.deployments)}: "
                           "name one, POST /predict/<deployment>")
        target = service.target(name, version, snap)
        check_media_type(headers.get(b"content-type"), octets=True)
        body = await read_body_raw(receive, headers.get(b"content-length"),
                                   runtime.max_body_bytes)
        inference, choice = decode(body, headers, target)
        call = routing_call(target, scope["state"]["request_id"], headers,
                            scope["query_string"], inference.parameters)
        answer = await service.infer(target, inference, call, snap)
        content, extra, content_type = encode(answer, inference, call, choice)
    except GatewayError as exc:
        await _refuse(scope, send, runtime, snap, target, exc, time.perf_counter() - start)
        return
    finally:
        runtime.in_flight.exit()
    runtime.answered("http", scope["method"], scope["path"], scope["state"]["request_id"],
                     answer, inference.rows, time.perf_counter() - start)
    backend = answer.backend
    headers_out = answer_headers(backend.name, backend.version, answer.variant)
    await send_json(send, 200, content, headers_out + extra if extra else headers_out,
                    content_type)


async def _refuse(scope: Scope, send: Send, runtime: Runtime, snap: Snapshot,
                  target: Target | None, exc: GatewayError, elapsed: float) -> None:
    ran = runtime.refused("http", scope["method"], scope["path"], scope["state"]["request_id"],
                          snap, target, exc, elapsed)
    headers = answer_headers(*ran, None) if ran else []
    await send_json(send, exc.status_code, orjson.dumps({"error": exc.message}),
                    headers + error_headers(exc))


def _decode_v2(body: bytes, headers: dict[bytes, bytes], target: Target
               ) -> tuple[InferenceRequest, BinaryOutputs | None]:
    length = headers.get(BINARY_HEADER)
    if length is None:
        try:
            payload = v2.parse_json(body)
        except BadRequest as exc:
            if headers.get(b"content-type", b"").startswith(OCTETS):
                raise BadRequest(f"{exc.message}; a body with binary tensor data needs the "
                                 f"{binary.HEADER_NAME} header (the JSON part's length)"
                                 ) from None
            raise
        inference = v2.decode_request(payload)
    else:
        head, tail = binary.split_body(body, length)
        payload = v2.parse_json(head)
        inference = binary.decode_request_binary(payload, tail)
    if "outputs" not in payload and "parameters" not in payload:
        return inference, None  # all JSON, the common case: nothing more to read
    choice = binary.binary_outputs(payload)
    return inference, choice if choice.default or choice.chosen else None


def _encode_v2(answer: Answer, inference: InferenceRequest, call: Call,
               choice: BinaryOutputs | None) -> tuple[bytes, Headers, bytes]:
    response = InferenceResponse(
        answer.deployment.spec.name if answer.deployment else answer.backend.name,
        answer.backend.version, answer.outputs, inference.id)
    if choice is not None:
        names = choice.select(response.outputs)
        if names:
            content, length = binary.encode_response_binary(response, names)
            if length is not None:
                return content, [(BINARY_HEADER, str(length).encode())], OCTETS
    return v2.encode_response(response), [], JSON


def _decode_simple(body: bytes, headers: dict[bytes, bytes], target: Target
                   ) -> tuple[InferenceRequest, None]:
    if isinstance(target, Deployment):
        backend, json_field = target.champion, target.spec.routing.json_field
    else:
        backend, json_field = target, None
    return simple.decode_request(v2.parse_json(body), backend.name, backend.signature,
                                 backend.classifier, json_field), None


def _encode_simple(answer: Answer, inference: InferenceRequest, call: Call, choice: None
                   ) -> tuple[bytes, Headers, bytes]:
    info = answer.backend.classifier
    body: dict[str, Any] = {
        "id": inference.id or call.request_id,
        "deployment": answer.deployment.spec.name if answer.deployment else None,
        "model": answer.backend.name,
        "version": answer.backend.version,
        "variant": answer.variant,
        "predictions": simple.predictions(info, answer.outputs) if info else [],
    }
    return orjson.dumps(body), [], JSON


async def infer(scope: Scope, receive: Receive, send: Send) -> None:
    params = scope["path_params"]
    await serve(scope, receive, send, params["name"], params.get("version"), _decode_v2,
                _encode_v2)


async def predict(scope: Scope, receive: Receive, send: Send) -> None:
    runtime: Runtime = scope["app"].state.runtime
    name = (scope["path_params"].get("deployment")
            or runtime.service.snapshot.default_deployment)
    await serve(scope, receive, send, name, None, _decode_simple, _encode_simple)


def match(path: str) -> tuple[Callable[[Scope, Receive, Send], Any], dict[str, str]] | None:
    """The inference endpoint for a POST path, without walking the router (hot path)."""
    if path == "/predict":
        return predict, {}
    if path.startswith("/predict/"):
        rest = path[9:]
        return (predict, {"deployment": rest}) if rest and "/" not in rest else None
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        parts = path[11:-6].split("/")
        if len(parts) == 1 and parts[0]:
            return infer, {"name": parts[0]}
        if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
            return infer, {"name": parts[0], "version": parts[2]}
    return None


# Listed in the router too (OpenAPI, 405 for other methods); GatewayApp dispatches POSTs to
# these endpoints directly.
routes = [
    Route("/v2/models/{name}/infer", infer, methods=["POST"]),
    Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
    Route("/predict", predict, methods=["POST"]),
    Route("/predict/{deployment}", predict, methods=["POST"]),
]
