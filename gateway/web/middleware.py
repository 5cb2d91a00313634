"""Plain ASGI middleware: every response carries ``x-request-id``."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
log = logging.getLogger("gateway.web")


_SANE_ID = re.compile(rb"[\x21-\x7e]{1,128}")


def _acceptable(value: bytes) -> bool:
    """1-128 visible ASCII characters (one C-level match, not a Python loop per byte)."""
    return _SANE_ID.fullmatch(value) is not None


class _RandomHex:
    """Hex digits from the OS's CSPRNG, read a block at a time: one ``getrandom`` call per
    256 ids instead of one per request (a syscall costs more than a tiny model's call)."""

    __slots__ = ("hex", "pos")
    BLOCK_IDS = 256

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget what is left: a forked child must not issue its parent's ids."""
        self.hex = b""
        self.pos = 0


_POOL = _RandomHex()
os.register_at_fork(after_in_child=_POOL.reset)


def new_request_id(pool: _RandomHex = _POOL, urandom: Callable[[int], bytes] = os.urandom
                   ) -> bytes:
    """32 hex digits: 128 bits from ``os.urandom``, so that nobody who has seen earlier ids
    can guess the next one (ids are what feedback is posted against)."""
    pos = pool.pos
    if pos >= len(pool.hex):
        pool.hex = urandom(16 * pool.BLOCK_IDS).hex().encode()
        pos = 0
    pool.pos = pos + 32
    return pool.hex[pos:pos + 32]


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
            log.exception("unhandled error on %s %r", scope.get("method"), scope.get("path"))
            if started:
                raise
            body = orjson.dumps({"error": f"internal error: {type(exc).__name__}"})
            await send({"type": "http.response.start", "status": 500, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()), (HEADER, request_id)]})
            await send({"type": "http.response.body", "body": body})
