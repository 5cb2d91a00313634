"""Exception handlers: every error is ``{"error": "..."}``; 4xx at INFO, 5xx with traceback."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import GatewayError
from gateway.web.http import error_response, json_response

log = logging.getLogger("gateway.web")


async def gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    if exc.status_code >= 500:
        log.error("%s %s -> %d: %s", request.method, request.url.path, exc.status_code,
                  exc.message)
    else:
        log.info("%s %s -> %d: %s", request.method, request.url.path, exc.status_code,
                 exc.message)
    return error_response(exc)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} not allowed on {request.url.path}"
    return json_response({"error": message}, exc.status_code, dict(exc.headers or {}))


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return json_response({"error": f"internal error: {type(exc).__name__}"}, 500)


HANDLERS = {
    GatewayError: gateway_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
