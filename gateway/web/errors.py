"""Exception handlers: every error is ``{"error": "..."}``; 4xx at INFO, 5xx with traceback."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import GatewayError
from gateway.web.http import error_response, json_response

log = logging.getLogger("gateway.web")


def log_error(method: str, path: str, exc: GatewayError) -> None:
    """Every error response is logged this way, on the fast path and the router's alike:
    5xx at ERROR, 4xx at INFO; what the caller sent is quoted (repr), never raw."""
    level = logging.ERROR if exc.status_code >= 500 else logging.INFO
    if log.isEnabledFor(level):
        log.log(level, "%s %r -> %d: %r", method, path, exc.status_code, exc.message)


async def gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    request.scope.setdefault("state", {}).update(error_code=exc.code, error=exc.message)
    log_error(request.method, request.url.path, exc)
    return error_response(exc)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} not allowed on {request.url.path}"
    request.scope.setdefault("state", {}).update(error_code=f"http_{exc.status_code}",
                                                 error=message)
    return json_response({"error": message}, exc.status_code, dict(exc.headers or {}))


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %r", request.method, request.url.path)
    return json_response({"error": f"internal error: {type(exc).__name__}"}, 500)


HANDLERS = {
    GatewayError: gateway_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
