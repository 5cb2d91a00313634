"""V2 infer and the simple /predict endpoint: HTTP in, Service call, HTTP out."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.errors import GatewayError, NotFound
from gateway.protocol import simple, v2
from gateway.protocol.tensors import InferenceRequest, InferenceResponse
from gateway.runtime import Runtime
from gateway.service import Answer, Call, Target, routing_call
from gateway.snapshot import Deployment
from gateway.web.errors import log_error
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


def target_headers(target: Target | None) -> list[tuple[bytes, bytes]]:
    if target is None:
        return []
    backend = target.champion if isinstance(target, Deployment) else target
    return answer_headers(backend.name, backend.version, None)


Decoder = Callable[[Any, Target], InferenceRequest]
Encoder = Callable[[Answer, InferenceRequest, Call], bytes]


async def serve(scope: Scope, receive: Receive, send: Send, name: str | None,
                version: str | None,
                decode: Decoder, encode: Encoder) -> None:
    """One inference request, as raw ASGI: this is the hot path, so no Request object.

    The caller's token is checked first (when inference needs one), then ``name`` (None:
    /predict with no default deployment). Failures before the service (media type, size,
    JSON, decoding) are counted here; the service counts its own.
    """
    runtime: Runtime = scope["app"].state.runtime
    service = runtime.service
    start = time.perf_counter()
    headers = dict(scope["headers"])
    target = None
    runtime.in_flight.enter()
    try:
        if runtime.inference_check is not None:  # only when an inference token is configured
            runtime.inference_check(headers.get(b"authorization"))
        if name is None:
            raise NotFound(f"several deployments {sorted(service.snapshot.deployments)}: "
                           "name one, POST /predict/<deployment>")
        snap = service.snapshot  # the whole request runs on the snapshot it began on
        target = service.target(name, version, snap)
        try:
            check_media_type(headers.get(b"content-type"))
            body = await read_body_raw(receive, headers.get(b"content-length"),
                                       runtime.max_body_bytes)
            inference = decode(v2.parse_json(body), target)
        except GatewayError as exc:
            raise service.failed(
                target.champion if isinstance(target, Deployment) else target, exc) from None
        call = routing_call(target, scope["state"]["request_id"], headers,
                            scope["query_string"], inference.parameters)
        answer = await service.infer(target, inference, call, snap)
        content = encode(answer, inference, call)
    except GatewayError as exc:
        log_error(scope["method"], scope["path"], exc)
        await send_json(send, exc.status_code, orjson.dumps({"error": exc.message}),
                        target_headers(target) + error_headers(exc))
        return
    finally:
        runtime.in_flight.exit()
    backend = answer.backend
    mm = service.snapshot.model_metrics.get(f"{backend.name}:{backend.version}")
    if mm is not None:
        mm.success.inc()
        mm.duration.observe(time.perf_counter() - start)
    await send_json(send, 200, content,
                    answer_headers(backend.name, backend.version, answer.variant))


def _decode_v2(payload: Any, target: Target) -> InferenceRequest:
    return v2.decode_request(payload)


def _encode_v2(answer: Answer, inference: InferenceRequest, call: Call) -> bytes:
    return v2.encode_response(InferenceResponse(
        answer.deployment.spec.name if answer.deployment else answer.backend.name,
        answer.backend.version, answer.outputs, inference.id))


def _decode_simple(payload: Any, target: Target) -> InferenceRequest:
    if isinstance(target, Deployment):
        backend, json_field = target.champion, target.spec.routing.json_field
    else:
        backend, json_field = target, None
    return simple.decode_request(payload, backend.name, backend.signature, backend.classifier,
                                 json_field)


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
