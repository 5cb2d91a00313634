"""The OpenAPI 3.1 document at /openapi.json, describing every endpoint."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import __version__
from gateway.protocol.tensors import DTYPES
from gateway.web.http import json_response

_ERR = {"description": "Error", "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/Error"}}}}


def _json(ref: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _op(summary: str, ok: dict[str, Any], body: str | None = None,
        errors: tuple[int, ...] = ()) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {"200": ok}}
    for code in errors:
        op["responses"][str(code)] = _ERR
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{body}"}}}}
    return op


_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
         "description": "a deployment name (answered by its champion or canary) or a model name"}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
_INFER_ERRORS = (400, 404, 413, 415, 500, 502, 504)


def _model_paths(suffix: str, versioned: bool) -> dict[str, Any]:
    params = [_NAME, _VERSION] if versioned else [_NAME]
    base = "/v2/models/{name}" + ("/versions/{version}" if versioned else "")
    return {
        base + suffix: {
            "parameters": params,
            **({"post": _op("V2 inference", _json("InferResponse"), "InferRequest",
                            _INFER_ERRORS)} if suffix == "/infer" else
               {"get": _op("Model readiness", {"description": "Ready"}, errors=(404, 503))}
               if suffix == "/ready" else
               {"get": _op("Model metadata", _json("ModelMetadata"), errors=(404,))}),
        }
    }


def document() -> dict[str, Any]:
    tensor = {"type": "object", "required": ["name", "shape", "datatype", "data"],
              "properties": {"name": {"type": "string"},
                             "shape": {"type": "array", "items": {"type": "integer"}},
                             "datatype": {"type": "string", "enum": sorted(DTYPES)},
                             "parameters": {"type": "object"},
                             "data": {"type": "array", "description": "flat or nested"}}}
    spec_tensor = {"type": "object", "properties": {
        "name": {"type": "string"}, "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}}}}
    paths: dict[str, Any] = {
        "/v2": {"get": _op("Server metadata", _json("ServerMetadata"))},
        "/v2/health/live": {"get": _op("Liveness", {"description": "Live"})},
        "/v2/health/ready": {"get": _op("Readiness", {"description": "Ready"}, errors=(503,))},
        "/predict": {"post": _op("Simple prediction on the default deployment",
                                 _json("PredictResponse"), "PredictRequest",
                                 (400, 404, 413, 415))},
        "/predict/{deployment}": {
            "parameters": [{"name": "deployment", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "post": _op("Simple prediction", _json("PredictResponse"), "PredictRequest",
                        (400, 404, 413, 415))},
        "/feedback": {"post": _op("Ground-truth labels by request id", _json("FeedbackResponse"),
                                  "FeedbackRequest", (400, 413, 415, 503))},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
            "description": "text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document",
                                  "responses": {"200": {"description": "OpenAPI 3.1"}}}},
    }
    for versioned in (False, True):
        for suffix in ("", "/ready", "/infer"):
            paths.update(_model_paths(suffix, versioned))
    schemas = {
        "Error": {"type": "object", "required": ["error"],
                  "properties": {"error": {"type": "string"}}},
        "ServerMetadata": {"type": "object", "properties": {
            "name": {"type": "string"}, "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}}}},
        "ModelMetadata": {"type": "object", "properties": {
            "name": {"type": "string"}, "versions": {"type": "array",
                                                     "items": {"type": "string"}},
            "platform": {"type": "string"}, "inputs": {"type": "array", "items": spec_tensor},
            "outputs": {"type": "array", "items": spec_tensor},
            "parameters": {"type": "object"}}},
        "InferRequest": {"type": "object", "required": ["inputs"], "properties": {
            "id": {"type": "string"}, "parameters": {"type": "object"},
            "inputs": {"type": "array", "items": tensor, "minItems": 1},
            "outputs": {"type": "array", "items": {"type": "object", "required": ["name"],
                                                   "properties": {"name": {"type": "string"},
                                                                  "parameters": {
                                                                      "type": "object"}}}}}},
        "InferResponse": {"type": "object", "properties": {
            "model_name": {"type": "string"}, "model_version": {"type": "string"},
            "id": {"type": "string"}, "parameters": {"type": "object"},
            "outputs": {"type": "array", "items": tensor}}},
        "PredictRequest": {"type": "object", "required": ["instances"], "properties": {
            "id": {"type": "string"},
            "instances": {"type": "array", "minItems": 1, "items": {"oneOf": [
                {"type": "array", "items": {"type": "number"},
                 "description": "feature values in model-card order"},
                {"type": "object", "additionalProperties": {"type": "number"},
                 "description": "feature name -> value"}]}}}},
        "FeedbackRequest": {"oneOf": [
            {"$ref": "#/components/schemas/FeedbackItem"},
            {"type": "object", "required": ["items"], "properties": {
                "deployment": {"type": "string"},
                "items": {"type": "array", "maxItems": 10000,
                          "items": {"$ref": "#/components/schemas/FeedbackItem"}}}}]},
        "FeedbackItem": {"type": "object", "required": ["request_id", "label"], "properties": {
            "request_id": {"type": "string", "maxLength": 128},
            "label": {"type": ["string", "number", "boolean"]},
            "deployment": {"type": "string"},
            "ts": {"type": "number", "description": "when the outcome happened (Unix s)"}}},
        "FeedbackResponse": {"type": "object", "properties": {"stored": {"type": "integer"}}},
        "PredictResponse": {"type": "object", "properties": {
            "id": {"type": "string"}, "deployment": {"type": ["string", "null"]},
            "model": {"type": "string"}, "version": {"type": "string"},
            "variant": {"type": ["string", "null"], "enum": ["champion", "canary", None]},
            "predictions": {"type": "array", "items": {"type": "object", "properties": {
                "label": {"type": "string"},
                "probabilities": {"type": "object",
                                  "additionalProperties": {"type": "number"}}}}}}},
    }
    return {"openapi": "3.1.0",
            "info": {"title": "Shadowgate", "version": __version__,
                     "description": "Shadow/canary serving gateway speaking the Open Inference "
                                    "Protocol V2. Every response carries x-request-id, "
                                    "x-shadowgate-model and x-shadowgate-version."},
            "paths": paths, "components": {"schemas": schemas}}


async def openapi(request: Request) -> Response:
    return json_response(document())


routes = [Route("/openapi.json", openapi, methods=["GET"])]
