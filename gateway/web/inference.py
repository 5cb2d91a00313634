"""V2 infer and the simple /predict endpoint: HTTP in, Service call, HTTP out."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.backends.base import Backend
from gateway.errors import BadRequest, GatewayError, NotFound
from gateway.protocol import simple, v2
from gateway.protocol.tensors import InferenceRequest, InferenceResponse
from gateway.runtime import Runtime
from gateway.service import Answer, Call
from gateway.snapshot import Deployment
from gateway.web.http import check_media_type, read_body_raw, send_json


@functools.lru_cache(maxsize=1024)
def answer_headers(model: str, version: str, variant: str | None
                   ) -> list[tuple[bytes, bytes]]:
    """Encoded once per (model, version, variant), not per request."""
    headers = [(b"x-shadowgate-model", model.encode()),
               (b"x-shadowgate-version", version.encode())]
    if variant is not None:
        headers.append((b"x-shadowgate-variant", variant.encode()))
    return headers


def target_headers(target: Deployment | Backend | None) -> list[tuple[bytes, bytes]]:
    if target is None:
        return []
    backend = target.champion if isinstance(target, Deployment) else target
    return answer_headers(backend.name, backend.version, None)


def _header(headers: dict[bytes, bytes], name: str) -> str | None:
    value = headers.get(name.encode())
    return None if value is None else value.decode("latin-1")


def routing_call(scope: Scope, headers: dict[bytes, bytes], target: Deployment | Backend,
                 fields: dict[str, Any] | None) -> Call:
    """Request id, sticky routing key (header, query, JSON field) and forced variant."""
    request_id: str = scope["state"]["request_id"]
    if not isinstance(target, Deployment):
        return Call(request_id)
    routing = target.spec.routing
    key = None
    if routing.header:
        key = _header(headers, routing.header)
    if key is None and routing.query and scope["query_string"]:
        values = parse_qs(scope["query_string"].decode("latin-1")).get(routing.query)
        key = values[0] if values else None
    if key is None and routing.json_field and fields:
        value = fields.get(routing.json_field)
        key = None if value is None else str(value)
    forced = _header(headers, routing.force_header) if routing.allow_force else None
    return Call(request_id, key or None, forced)


Decoder = Callable[[Any, Deployment | Backend], tuple[InferenceRequest, dict[str, Any] | None]]
Encoder = Callable[[Answer, InferenceRequest, Call], bytes]


async def serve(scope: Scope, receive: Receive, send: Send, name: str, version: str | None,
                decode: Decoder, encode: Encoder) -> None:
    """One inference request, as raw ASGI: this is the hot path, so no Request object."""
    runtime: Runtime = scope["app"].state.runtime
    start = time.perf_counter()
    headers = dict(scope["headers"])
    target = None
    runtime.in_flight.enter()
    try:
        target = runtime.service.target(name, version)
        check_media_type(headers.get(b"content-type"))
        body = await read_body_raw(receive, headers.get(b"content-length"),
                                   runtime.max_body_bytes)
        inference, fields = decode(v2.parse_json(body), target)
        call = routing_call(scope, headers, target, fields)
        answer = await runtime.service.infer(name, version, inference, call, target)
        content = encode(answer, inference, call)
    except GatewayError as exc:
        if target is not None and not exc.counted:
            backend = target.champion if isinstance(target, Deployment) else target
            runtime.metrics.request_failure.labels(backend.name, backend.version,
                                                   exc.code).inc()
        await send_json(send, exc.status_code, orjson.dumps({"error": exc.message}),
                        target_headers(target))
        return
    finally:
        runtime.in_flight.exit()
    backend = answer.backend
    mm = runtime.service.snapshot.model_metrics.get(f"{backend.name}:{backend.version}")
    if mm is not None:
        mm.success.inc()
        mm.duration.observe(time.perf_counter() - start)
    await send_json(send, 200, content,
                    answer_headers(backend.name, backend.version, answer.variant))


def _decode_v2(payload: Any, target: Deployment | Backend
               ) -> tuple[InferenceRequest, dict[str, Any] | None]:
    inference = v2.decode_request(payload)
    return inference, inference.parameters


def _encode_v2(answer: Answer, inference: InferenceRequest, call: Call) -> bytes:
    return v2.encode_response(InferenceResponse(
        answer.deployment.spec.name if answer.deployment else answer.backend.name,
        answer.backend.version, answer.outputs, inference.id))


def _decode_simple(payload: Any, target: Deployment | Backend
                   ) -> tuple[InferenceRequest, dict[str, Any] | None]:
    backend = target.champion if isinstance(target, Deployment) else target
    info = backend.classifier
    if info is None or not info.features or len(backend.signature.inputs) != 1:
        raise BadRequest(f"model {backend.name!r} has no feature list in its card; "
                         f"use POST /v2/models/{backend.name}/infer")
    if not isinstance(payload, dict):
        raise BadRequest(f"body: expected a JSON object, got {type(payload).__name__}")
    allowed = set(simple.MAX_FIELDS)
    if isinstance(target, Deployment) and target.spec.routing.json_field:
        allowed.add(target.spec.routing.json_field)
    unknown = payload.keys() - allowed
    if unknown:
        raise BadRequest(f"body: unknown field(s) {sorted(unknown)}; expected {sorted(allowed)}")
    spec = backend.signature.inputs[0]
    array = simple.rows_array(payload.get("instances"), info.features, spec.datatype)
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f"id: expected a string, got {type(request_id).__name__}")
    return InferenceRequest({spec.name: array}, id=request_id, finite=True), payload


def _encode_simple(answer: Answer, inference: InferenceRequest, call: Call) -> bytes:
    info = answer.backend.classifier
    body: dict[str, Any] = {
        "id": inference.id or call.request_id,
        "deployment": answer.deployment.spec.name if answer.deployment else None,
        "model": answer.backend.name,
        "version": answer.backend.version,
        "variant": answer.variant,
        "predictions": simple.predictions(info, answer.outputs) if info else [],
    }
    return orjson.dumps(body)


async def infer(scope: Scope, receive: Receive, send: Send) -> None:
    params = scope["path_params"]
    await serve(scope, receive, send, params["name"], params.get("version"), _decode_v2,
                _encode_v2)


async def predict(scope: Scope, receive: Receive, send: Send) -> None:
    runtime: Runtime = scope["app"].state.runtime
    name = (scope["path_params"].get("deployment")
            or runtime.service.snapshot.default_deployment)
    if name is None:
        deployments = sorted(runtime.service.snapshot.deployments)
        error = NotFound(f"several deployments {deployments}: name one, "
                         "POST /predict/<deployment>")
        await send_json(send, error.status_code, orjson.dumps({"error": error.message}), [])
        return
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
