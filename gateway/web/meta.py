"""Server and model metadata, health and readiness (V2), and /metrics."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import __version__
from gateway.backends.base import Backend
from gateway.errors import NotReady
from gateway.runtime import Runtime
from gateway.snapshot import Deployment
from gateway.web.auth import authorize
from gateway.web.http import error_response, json_response


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def server_metadata(request: Request) -> Response:
    return json_response({"name": "shadowgate", "version": __version__, "extensions": []})


async def live(request: Request) -> Response:
    return json_response({"live": True})


async def ready(request: Request) -> Response:
    if not _runtime(request).ready:
        return error_response(NotReady("gateway is starting or shutting down"))
    return json_response({"ready": True})


def backend_metadata(backend: Backend, name: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name or backend.name,
        "versions": [backend.version],
        "platform": backend.platform,
        "inputs": [s.as_json() for s in backend.signature.inputs],
        "outputs": [s.as_json() for s in backend.signature.outputs],
    }
    info = backend.classifier
    if info is not None:
        meta["parameters"] = {"class_labels": list(info.class_labels),
                              "label_output": info.label_output,
                              "scores_output": info.scores_output,
                              "features": list(info.features)}
    unknown = backend.signature.unknown_parts
    if unknown:
        # An empty list here would read as "takes no inputs"; say it is not known instead.
        meta.setdefault("parameters", {}).update({
            "unknown": list(unknown),
            "note": f"{' and '.join(unknown)} not known: the model's server did not list "
                    "them and the config declares none; "
                    + ("requests are passed through unchecked, the model's server validates "
                       "them" if "inputs" in unknown else "outputs are known from answers")})
    return meta


async def model_metadata(request: Request) -> Response:
    authorize("inference", request)
    service = _runtime(request).service
    target = service.target(request.path_params["name"], request.path_params.get("version"))
    if isinstance(target, Deployment):
        meta = backend_metadata(target.champion, target.spec.name)
        meta["versions"] = []  # a deployment is addressed by name only
        meta.setdefault("parameters", {}).update({
            "deployment": True,
            "champion": target.plan.champion,
            "canaries": {c.model: (c.hi - c.lo) / 100 for c in target.plan.canaries},
            "shadows": [s.model for s in target.plan.shadows],
            "revision": service.snapshot.revision,
        })
        return json_response(meta)
    return json_response(backend_metadata(target))


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
    Route("/v2/models/{name}", model_metadata, methods=["GET"]),
    Route("/v2/models/{name}/versions/{version}", model_metadata, methods=["GET"]),
    Route("/v2/models/{name}/ready", model_ready, methods=["GET"]),
    Route("/v2/models/{name}/versions/{version}/ready", model_ready, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
