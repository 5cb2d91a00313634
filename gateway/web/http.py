"""Small HTTP helpers shared by the routes: bounded body reads, JSON responses."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import BadRequest, GatewayError, PayloadTooLarge, UnsupportedMediaType

JSON = "application/json"


class RawJSONResponse(Response):
    """A JSON body with pre-encoded headers: skips Response's per-request header building."""

    media_type = JSON

    def __init__(self, body: bytes, status_code: int,
                 headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status_code
        self.body = body
        self.background = None
        self.raw_headers = [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]


def json_response(content: Any, status_code: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), status_code,
                    headers, JSON)


def error_response(exc: GatewayError, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps({"error": exc.message}), exc.status_code, headers, JSON)


def check_json_content_type(request: Request) -> None:
    """Accept application/json (and +json types); a missing header is taken as JSON."""
    value = request.headers.get("content-type")
    if value is None:
        return
    media = value.split(";", 1)[0].strip().lower()
    if media != JSON and not (media.startswith("application/") and media.endswith("+json")):
        raise UnsupportedMediaType(f"content-type: expected {JSON}, got {value!r}")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing anything over ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequest(f"content-length: expected an integer, got {declared!r}") from None
        if size > limit:
            raise PayloadTooLarge(f"body: {size} bytes is over the limit of {limit} bytes")
        return await request.body()
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"body: more than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
