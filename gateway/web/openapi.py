"""The OpenAPI 3.1 document at /openapi.json, describing every endpoint.

It states what the server enforces, so that a request valid by the document is not refused
for its shape: non-empty names and ids, the fields each body allows (``additionalProperties:
false`` where unknown fields are refused), the configured deployments and their labels, and,
per operation, whether a bearer token is needed (from the running gateway's tokens).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import __version__
from gateway.predlog import feedback as fb
from gateway.protocol.tensors import DTYPES
from gateway.protocol.v2 import MAX_RANK
from gateway.runtime import Runtime
from gateway.snapshot import Snapshot
from gateway.web.auth import AuthScope, Guard
from gateway.web.feedback import label_classes
from gateway.web.http import json_response

_ERR = {"description": "Error", "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/Error"}}}}
_SEGMENT = {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}


def _json(ref: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


class _Ops:
    """Builds operations with the security the running gateway applies."""

    def __init__(self, guard: Guard | None) -> None:
        self.guard = guard

    def op(self, summary: str, ok: dict[str, Any], body: str | None = None,
           errors: tuple[int, ...] = (), scope: AuthScope | None = None) -> dict[str, Any]:
        op: dict[str, Any] = {"summary": summary, "responses": {"200": ok}, "security": []}
        if scope is not None:
            policy = "token" if self.guard is None else self.guard.policies[scope]
            if policy in ("token", "disabled"):
                op["security"] = [{"bearer": [scope]}]
                errors = (*errors, 401, 403)
            if policy == "disabled":
                op["description"] = (f"Disabled: no {scope} token is configured and the "
                                     "gateway does not listen on a loopback address.")
        for code in sorted(set(errors)):
            op["responses"][str(code)] = _ERR
        if body:
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{body}"}}}}
        return op


_NAME = {"name": "name", "in": "path", "required": True, "schema": _SEGMENT,
         "description": "a deployment name (answered by its champion or canary) or a model name"}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": _SEGMENT}
_INFER_ERRORS = (400, 404, 413, 415, 500, 502, 504)


def _model_paths(ops: _Ops, suffix: str, versioned: bool) -> dict[str, Any]:
    params = [_NAME, _VERSION] if versioned else [_NAME]
    base = "/v2/models/{name}" + ("/versions/{version}" if versioned else "")
    if suffix == "/infer":
        method = {"post": ops.op("V2 inference", _json("InferResponse"), "InferRequest",
                                 _INFER_ERRORS, "inference")}
    elif suffix == "/ready":
        method = {"get": ops.op("Model readiness", {"description": "Ready"}, errors=(404, 503),
                                scope="inference")}
    else:
        method = {"get": ops.op("Model metadata", _json("ModelMetadata"), errors=(404,),
                                scope="inference")}
    return {base + suffix: {"parameters": params, **method}}


def _label_schema(classes: dict[str, tuple[str, ...] | None]) -> dict[str, Any]:
    """What /feedback accepts as a label: exact when every deployment takes the same labels,
    else the union (each label is then checked against its item's deployment)."""
    options: list[dict[str, Any]] = []
    names = sorted({c for labels in classes.values() if labels for c in labels})
    if names:
        width = max(len(labels) for labels in classes.values() if labels)
        options += [{"type": "string", "enum": names},
                    {"type": "integer", "minimum": 0, "maximum": width - 1,
                     "description": "a class index, stored as the class name"}]
    if any(labels is None for labels in classes.values()):
        options.append({"type": "number", "description": "for a model without classes"})
    schema: dict[str, Any] = {"anyOf": options} if options else {"not": {}}
    if len(set(classes.values())) > 1:
        schema["description"] = "checked against the classes of the item's deployment"
    return schema


def _feedback_schemas(snapshot: Snapshot | None, now: float) -> dict[str, Any]:
    classes = label_classes(snapshot) if snapshot is not None else {}
    deployments = sorted(classes)
    deployment = {"type": "string", "enum": deployments}
    needs_deployment = snapshot is None or snapshot.default_deployment is None
    ident = {"type": "string", "minLength": 1, "maxLength": fb.MAX_ID}
    item = {
        "type": "object", "additionalProperties": False,
        "description": "request_id or id (exactly one), and a label, outcomes or both. An id "
                       "without a record is kept only while its ts is within the orphan "
                       "window (404, or listed under refused in a bulk post, after it).",
        "properties": {
            "request_id": {**ident, "description": "the x-request-id the gateway returned"},
            "id": {**ident, "description": "the id the caller sent in the request body"},
            "label": _label_schema(classes),
            "outcomes": {"type": "object", "minProperties": 1,
                         "maxProperties": fb.MAX_OUTCOMES,
                         "propertyNames": {"pattern": fb.OUTCOME_NAME},
                         "additionalProperties": {"type": "number"}},
            "correction": {"type": "boolean", "default": False,
                           "description": "overwrite an earlier label or outcome"},
            "deployment": deployment,
            "ts": {"type": "number", "minimum": 0,
                   "maximum": int(now + fb.FUTURE_SLACK_S) // 3600 * 3600,
                   "description": "when the outcome happened (Unix s); default: arrival"},
        },
        "allOf": [{"oneOf": [{"required": ["request_id"]}, {"required": ["id"]}]},
                  {"anyOf": [{"required": ["label"]}, {"required": ["outcomes"]}]}],
    }
    single = {**item, "required": ["deployment"]} if needs_deployment else item
    bulk = {"type": "object", "additionalProperties": False,
            "required": ["items", "deployment"] if needs_deployment else ["items"],
            "properties": {"deployment": deployment, "items": {
                "type": "array", "maxItems": fb.MAX_ITEMS,
                "items": {"$ref": "#/components/schemas/FeedbackItem"}}}}
    count = {"type": "integer", "minimum": 0}
    return {
        "FeedbackRequest": {"oneOf": [{"$ref": "#/components/schemas/FeedbackSingle"},
                                      {"$ref": "#/components/schemas/FeedbackBulk"}]},
        "FeedbackSingle": single,
        "FeedbackBulk": bulk,
        "FeedbackItem": item,
        "FeedbackResponse": {"type": "object", "required": [
            "stored", "ignored", "corrected", "orphans"], "properties": {
            "stored": count, "ignored": count, "corrected": count, "orphans": count,
            "refused": {"type": "array", "items": {"type": "object", "properties": {
                "index": count, "error": {"type": "string"}}}}}},
    }


def _predict_request(snapshot: Snapshot | None) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "id": {"type": "string"},
        "instances": {"type": "array", "minItems": 1, "items": {"oneOf": [
            {"type": "array", "items": {"type": "number"},
             "description": "feature values in model-card order"},
            {"type": "object", "additionalProperties": {"type": "number"},
             "description": "feature name -> value"}]}}}
    for dep in (snapshot.deployments.values() if snapshot is not None else ()):
        if dep.spec.routing.json_field:
            properties[dep.spec.routing.json_field] = {
                "description": f"the routing key of deployment {dep.spec.name!r}"}
    return {"type": "object", "required": ["instances"], "additionalProperties": False,
            "properties": properties}


def _report_and_admin_paths(ops: _Ops) -> dict[str, Any]:
    deployment = {"name": "deployment", "in": "path", "required": True, "schema": _SEGMENT}
    window = [{"name": n, "in": "query", "required": False, "schema": {"type": "string"},
               "description": d} for n, d in (
        ("since", "ISO 8601 time or a duration ago (30m, 24h, 7d)"),
        ("until", "the same forms; exclusive"), ("candidate", "one candidate model"),
        ("format", "html, json or md (default: by the Accept header, else html)"))]
    report_ok = {"description": "The report (schema shadowgate.report/1 as JSON, see "
                                "docs/report-schema.json)",
                 "content": {"text/html": {"schema": {"type": "string"}},
                             "application/json": {"schema": {"type": "object"}},
                             "text/markdown": {"schema": {"type": "string"}}}}
    action = {"name": "action", "in": "path", "required": True,
              "schema": {"type": "string", "enum": ["pause", "resume", "promote", "rollback"]}}
    obj = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
    return {
        "/reports/{deployment}": {"parameters": [deployment, *window], "get": ops.op(
            "Comparison report of a deployment's candidates", report_ok,
            errors=(400, 404, 503), scope="reports")},
        "/admin/status": {"get": ops.op("Config, reloads, rollouts, the acting replica", obj,
                                        errors=(503,), scope="admin")},
        "/admin/reload": {"post": ops.op("Read the config file again", obj,
                                         errors=(422, 503), scope="admin")},
        "/admin/rollouts/{deployment}": {"parameters": [deployment], "get": ops.op(
            "A rollout's state and recorded decisions", obj, errors=(400, 404, 503),
            scope="admin")},
        "/admin/rollouts/{deployment}/{action}": {"parameters": [deployment, action],
                                                  "post": ops.op(
            "A person's action on a rollout, recorded with who and why", obj,
            "RolloutAction", (400, 404, 409, 415, 503), "admin")},
    }


def document(snapshot: Snapshot | None = None, guard: Guard | None = None,
             now: float | None = None) -> dict[str, Any]:
    """The document for a running gateway (its deployments, labels and tokens); without
    them, a generic one (every guarded operation shown as needing its token)."""
    now = time.time() if now is None else now
    ops = _Ops(guard)
    tensor = {"type": "object", "required": ["name", "shape", "datatype", "data"],
              "additionalProperties": False,
              "properties": {"name": {"type": "string", "minLength": 1},
                             "shape": {"type": "array", "maxItems": MAX_RANK,
                                       "items": {"type": "integer", "minimum": 0,
                                                 "maximum": 2**63 - 1}},
                             "datatype": {"type": "string", "enum": sorted(DTYPES)},
                             "parameters": {"type": "object"},
                             "data": {"type": "array", "description": "flat or nested"}}}
    spec_tensor = {"type": "object", "properties": {
        "name": {"type": "string"}, "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}}}}
    paths: dict[str, Any] = {
        "/v2": {"get": ops.op("Server metadata", _json("ServerMetadata"))},
        "/v2/health/live": {"get": ops.op("Liveness", {"description": "Live"})},
        "/v2/health/ready": {"get": ops.op("Readiness (false while starting or draining)",
                                           {"description": "Ready"}, errors=(503,))},
        "/predict": {"post": ops.op("Simple prediction on the default deployment",
                                    _json("PredictResponse"), "PredictRequest",
                                    (400, 404, 413, 415), "inference")},
        "/predict/{deployment}": {
            "parameters": [{"name": "deployment", "in": "path", "required": True,
                            "schema": _SEGMENT}],
            "post": ops.op("Simple prediction", _json("PredictResponse"), "PredictRequest",
                           (400, 404, 413, 415), "inference")},
        "/feedback": {"post": ops.op(
            "Labels and outcomes by request id or body id", _json("FeedbackResponse"),
            "FeedbackRequest", (400, 404, 413, 415, 429, 503), "feedback")},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {
            "200": {"description": "text exposition format",
                    "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "security": [],
                                  "responses": {"200": {"description": "OpenAPI 3.1"}}}},
        **_report_and_admin_paths(ops),
    }
    for versioned in (False, True):
        for suffix in ("", "/ready", "/infer"):
            paths.update(_model_paths(ops, suffix, versioned))
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
        "InferRequest": {"type": "object", "required": ["inputs"],
                         "additionalProperties": False, "properties": {
            "id": {"type": "string", "description": "kept in the paired record; feedback may "
                                                    "name the request by it"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "items": tensor, "minItems": 1},
            "outputs": {"type": "array", "items": {"type": "object", "required": ["name"],
                                                   "properties": {"name": {"type": "string"},
                                                                  "parameters": {
                                                                      "type": "object"}}}}}},
        "InferResponse": {"type": "object", "properties": {
            "model_name": {"type": "string"}, "model_version": {"type": "string"},
            "id": {"type": "string"}, "parameters": {"type": "object"},
            "outputs": {"type": "array", "items": tensor}}},
        "PredictRequest": _predict_request(snapshot),
        "RolloutAction": {"type": "object", "required": ["reason"],
                          "additionalProperties": False, "properties": {
            "reason": {"type": "string", "minLength": 1, "maxLength": 500},
            "write_config": {"type": "boolean", "description": "promote only: also rewrite "
                                                               "the config file to match"}}},
        **_feedback_schemas(snapshot, now),
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
            "paths": paths,
            "components": {"schemas": schemas, "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "a token of SHADOWGATE_<SCOPE>_TOKEN or the tokens file; the "
                               "scope each operation needs is listed with it"}}}}


async def openapi(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    return json_response(document(runtime.service.snapshot, request.app.state.guard))


routes = [Route("/openapi.json", openapi, methods=["GET"])]
