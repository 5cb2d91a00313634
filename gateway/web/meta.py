"""Server and model metadata, health and readiness (V2), Triton's model configuration,
statistics and repository index extensions, and /metrics."""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import __version__, describe
from gateway.describe import target_metadata
from gateway.errors import BadRequest, NotReady, NotSupported
from gateway.protocol.v2 import parse_json
from gateway.runtime import Runtime
from gateway.web.auth import authorize
from gateway.web.http import check_json_content_type, error_response, json_response, read_body


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def server_metadata(request: Request) -> Response:
    return json_response({"name": "shadowgate", "version": __version__,
                          "extensions": list(describe.EXTENSIONS)})


async def live(request: Request) -> Response:
    return json_response({"live": True})


async def ready(request: Request) -> Response:
    if not _runtime(request).ready:
        return error_response(NotReady("gateway is starting or shutting down"))
    return json_response({"ready": True})


async def model_metadata(request: Request) -> Response:
    authorize("inference", request)
    service = _runtime(request).service
    snap = service.snapshot
    target = service.target(request.path_params["name"], request.path_params.get("version"),
                            snap)
    return json_response(target_metadata(snap, target))


async def model_config(request: Request) -> Response:
    """Triton's model configuration extension (what tritonclient's get_model_config and
    perf_analyzer read)."""
    authorize("inference", request)
    runtime = _runtime(request)
    service = runtime.service
    target = service.target(request.path_params["name"], request.path_params.get("version"),
                            service.snapshot)
    return json_response(describe.model_config(target, runtime.max_body_bytes))


async def model_stats(request: Request) -> Response:
    """Triton's statistics extension: every model and deployment, or the one named."""
    authorize("inference", request)
    snap = _runtime(request).service.snapshot
    return json_response({"model_stats": describe.model_stats(
        snap, request.path_params.get("name"), request.path_params.get("version"))})


async def repository_index(request: Request) -> Response:
    """Triton's model repository extension, index only: deployments and model versions."""
    authorize("inference", request)
    body = await read_body(request, 64 * 1024)
    if body.strip():
        check_json_content_type(request)
        payload = parse_json(body)
        if not isinstance(payload, dict) or not isinstance(payload.get("ready", False), bool):
            raise BadRequest(f"request body: expected an object with an optional boolean "
                             f"'ready', got {payload!r}"[:300])
    return json_response(describe.repository_index(_runtime(request).service.snapshot))


async def repository_change(request: Request) -> Response:
    authorize("inference", request)
    raise NotSupported(
        f"{request.url.path.rsplit('/', 1)[1]}: models are loaded and unloaded by editing the "
        "config file (it is reloaded within a second of a change); this gateway does not "
        "take load or unload requests")


async def model_ready(request: Request) -> Response:
    authorize("inference", request)
    runtime = _runtime(request)
    runtime.service.target(request.path_params["name"], request.path_params.get("version"))
    if not runtime.ready:
        return error_response(NotReady("gateway is starting or shutting down"))
    return json_response({"name": request.path_params["name"], "ready": True})


async def metrics(request: Request) -> Response:
    registry = _runtime(request).metrics.registry
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return Response(generate_latest(registry), headers={"content-type": CONTENT_TYPE_LATEST})


routes = [
    Route("/v2", server_metadata, methods=["GET"]),
    Route("/v2/health/live", live, methods=["GET"]),
    Route("/v2/health/ready", ready, methods=["GET"]),
    Route("/v2/models/stats", model_stats, methods=["GET"]),  # before /v2/models/{name}
    Route("/v2/models/{name}", model_metadata, methods=["GET"]),
    Route("/v2/models/{name}/versions/{version}", model_metadata, methods=["GET"]),
    Route("/v2/models/{name}/config", model_config, methods=["GET"]),
    Route("/v2/models/{name}/versions/{version}/config", model_config, methods=["GET"]),
    Route("/v2/models/{name}/stats", model_stats, methods=["GET"]),
    Route("/v2/models/{name}/versions/{version}/stats", model_stats, methods=["GET"]),
    Route("/v2/repository/index", repository_index, methods=["POST"]),
    Route("/v2/repository/models/{name}/load", repository_change, methods=["POST"]),
    Route("/v2/repository/models/{name}/unload", repository_change, methods=["POST"]),
    Route("/v2/models/{name}/ready", model_ready, methods=["GET"]),
    Route("/v2/models/{name}/versions/{version}/ready", model_ready, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
