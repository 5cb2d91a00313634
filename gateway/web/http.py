"""Small HTTP helpers shared by the routes: bounded body reads, JSON responses."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Send

from gateway.errors import BadRequest, GatewayError, PayloadTooLarge, UnsupportedMediaType

JSON = "application/json"


def json_response(content: Any, status_code: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), status_code,
                    headers, JSON)


def error_response(exc: GatewayError, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps({"error": exc.message}), exc.status_code,
                    {**exc.headers, **(headers or {})}, JSON)


def error_headers(exc: GatewayError) -> list[tuple[bytes, bytes]]:
    """The error's own headers, encoded for a raw ASGI response."""
    return [(k.encode(), v.encode()) for k, v in exc.headers.items()]


OCTETS = "application/octet-stream"


def check_media_type(raw: bytes | None, octets: bool = False) -> None:
    """Accept application/json (and +json types); a missing header is taken as JSON.

    ``octets``: also application/octet-stream, as V2 clients send it: for the binary
    tensor data extension, and tritonclient.http.aio even for a body that is all JSON."""
    if raw is None or raw == b"application/json":
        return
    value = raw.decode("latin-1")
    media = value.split(";", 1)[0].strip().lower()
    if media == JSON or (media.startswith("application/") and media.endswith("+json")):
        return
    if octets and media == OCTETS:
        return
    expected = (f"{JSON} (or {OCTETS} for the binary tensor data extension)" if octets
                else JSON)
    raise UnsupportedMediaType(f"content-type: expected {expected}, got {value!r}")


def check_json_content_type(request: Request) -> None:
    value = request.headers.get("content-type")
    check_media_type(None if value is None else value.encode("latin-1"))


async def read_body_raw(receive: Receive, declared: bytes | None, limit: int) -> bytes:
    """The whole body, refusing anything over ``limit`` bytes before reading it all."""
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequest(f"content-length: expected an integer, got "
                             f"{declared.decode('latin-1')!r}") from None
        if size > limit:
            raise PayloadTooLarge(f"body: {size} bytes is over the limit of {limit} bytes")
    chunks, total = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise BadRequest("client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"body: more than the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    return await read_body_raw(request.receive,
                               None if declared is None else declared.encode("latin-1"), limit)


async def send_json(send: Send, status: int, body: bytes,
                    headers: list[tuple[bytes, bytes]],
                    content_type: bytes = b"application/json") -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", content_type), (b"content-length", str(len(body)).encode()),
        *headers]})
    await send({"type": "http.response.body", "body": body})
