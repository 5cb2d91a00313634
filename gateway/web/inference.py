"""V2 infer and the simple /predict endpoint: HTTP in, Service call, HTTP out."""

from __future__ import annotations

import functools
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.backends.base import Backend
from gateway.errors import BadRequest, GatewayError, NotFound
from gateway.protocol import simple, v2
from gateway.protocol.tensors import InferenceRequest, InferenceResponse
from gateway.runtime import Runtime
from gateway.service import Answer, Call
from gateway.snapshot import Deployment
from gateway.web.http import (
    RawJSONResponse,
    check_json_content_type,
    error_response,
    read_body,
)


@functools.lru_cache(maxsize=1024)
def answer_headers(model: str, version: str, variant: str | None
                   ) -> list[tuple[bytes, bytes]]:
    """Encoded once per (model, version, variant), not per request."""
    headers = [(b"x-shadowgate-model", model.encode()),
               (b"x-shadowgate-version", version.encode())]
    if variant is not None:
        headers.append((b"x-shadowgate-variant", variant.encode()))
    return headers


def target_headers(target: Deployment | Backend | None) -> dict[str, str] | None:
    if target is None:
        return None
    backend = target.champion if isinstance(target, Deployment) else target
    return {"x-shadowgate-model": backend.name, "x-shadowgate-version": backend.version}


def routing_call(request: Request, target: Deployment | Backend,
                 fields: dict[str, Any] | None) -> Call:
    """Request id, sticky routing key (header, query, JSON field) and forced variant."""
    request_id: str = request.scope["state"]["request_id"]
    if not isinstance(target, Deployment):
        return Call(request_id)
    routing = target.spec.routing
    key = None
    if routing.header:
        key = request.headers.get(routing.header)
    if key is None and routing.query:
        key = request.query_params.get(routing.query)
    if key is None and routing.json_field and fields:
        value = fields.get(routing.json_field)
        key = None if value is None else str(value)
    forced = request.headers.get(routing.force_header) if routing.allow_force else None
    return Call(request_id, key or None, forced)


async def _serve(request: Request, name: str, version: str | None, decode: Any,
                 encode: Any) -> Response:
    runtime: Runtime = request.app.state.runtime
    metrics = runtime.metrics
    start = time.perf_counter()
    target = None
    runtime.in_flight.enter()
    try:
        target = runtime.service.target(name, version)
        check_json_content_type(request)
        body = await read_body(request, runtime.max_body_bytes)
        inference, fields = decode(v2.parse_json(body), target)
        call = routing_call(request, target, fields)
        answer = await runtime.service.infer(name, version, inference, call)
    except GatewayError as exc:
        if target is not None and not exc.counted:
            backend = target.champion if isinstance(target, Deployment) else target
            metrics.request_failure.labels(backend.name, backend.version, exc.code).inc()
        return error_response(exc, target_headers(target))
    finally:
        runtime.in_flight.exit()
    content = encode(answer, inference, call)
    backend = answer.backend
    mm = runtime.service.snapshot.model_metrics.get(f"{backend.name}:{backend.version}")
    if mm is not None:
        mm.success.inc()
        mm.duration.observe(time.perf_counter() - start)
    return RawJSONResponse(content, 200,
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
    return InferenceRequest({spec.name: array}, id=request_id), payload


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


async def infer(request: Request) -> Response:
    params = request.path_params
    return await _serve(request, params["name"], params.get("version"), _decode_v2, _encode_v2)


async def predict(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    name = request.path_params.get("deployment") or runtime.service.snapshot.default_deployment
    if name is None:
        deployments = sorted(runtime.service.snapshot.deployments)
        return error_response(NotFound(
            f"several deployments {deployments}: name one, POST /predict/<deployment>"))
    return await _serve(request, name, None, _decode_simple, _encode_simple)


routes = [
    Route("/v2/models/{name}/infer", infer, methods=["POST"]),
    Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
    Route("/predict", predict, methods=["POST"]),
    Route("/predict/{deployment}", predict, methods=["POST"]),
]
