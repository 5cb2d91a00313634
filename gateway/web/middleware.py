"""Plain ASGI middleware: every response carries ``x-request-id``; the access log."""

from __future__ import annotations

import logging
import time

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.requestids import acceptable, new_request_id

HEADER = b"x-request-id"
log = logging.getLogger("gateway.web")


class RequestIdMiddleware:
    """Uses the caller's ``x-request-id`` when it is sane, else 32 random hex digits from
    the OS's CSPRNG.

    The id is put in ``scope["state"]["request_id"]`` for the routes.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = b""
        for key, value in scope["headers"]:
            if key == HEADER:
                request_id = value
                break
        if not acceptable(request_id):
            request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id.decode()

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), (HEADER, request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Starlette's last-resort handler sits outside this middleware; answer here so
            # that a 500 is JSON and still carries the request id.
            log.exception("unhandled error on %s %r", scope.get("method"), scope.get("path"))
            if started:
                raise
            body = orjson.dumps({"error": f"internal error: {type(exc).__name__}"})
            await send({"type": "http.response.start", "status": 500, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()), (HEADER, request_id)]})
            await send({"type": "http.response.body", "body": body})


class AccessLogMiddleware:
    """An access line for each request on the router's path, when the access log is on
    (the inference fast path writes its own). Installed inside RequestIdMiddleware; the
    error handlers leave the error's code and message in ``scope["state"]``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            runtime = getattr(scope["app"].state, "runtime", None)
            if runtime is not None and runtime.access.enabled:
                state = scope.get("state", {})
                elapsed = time.perf_counter() - start
                if status < 400:
                    runtime.access.success("http", scope["method"], scope["path"], status,
                                           elapsed, state.get("request_id", ""))
                else:
                    runtime.access.failure("http", scope["method"], scope["path"], status,
                                           elapsed, state.get("request_id", ""),
                                           state.get("error_code", "http_error"),
                                           state.get("error", ""))
