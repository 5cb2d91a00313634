"""Plain ASGI middleware: every response carries ``x-request-id``."""

from __future__ import annotations

import logging
import random
import re

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
log = logging.getLogger("gateway.web")


_SANE_ID = re.compile(rb"[\x21-\x7e]{1,128}")


def _acceptable(value: bytes) -> bool:
    """1-128 visible ASCII characters (one C-level match, not a Python loop per byte)."""
    return _SANE_ID.fullmatch(value) is not None


def new_request_id() -> bytes:
    """32 random hex digits. Mersenne Twister, not os.urandom: a getrandom syscall per
    request costs more than the model call. Ids need to be unique, not secret; the module's
    generator is seeded from the OS and reseeded in forked children."""
    return b"%032x" % random.getrandbits(128)


class RequestIdMiddleware:
    """Uses the caller's ``x-request-id`` when it is sane, else 32 random hex digits.

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
        if not _acceptable(request_id):
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
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            body = orjson.dumps({"error": f"internal error: {type(exc).__name__}"})
            await send({"type": "http.response.start", "status": 500, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()), (HEADER, request_id)]})
            await send({"type": "http.response.body", "body": body})
