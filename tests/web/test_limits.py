"""HTTP limits on a real uvicorn server: oversized headers, slow clients, too many
connections; and the drain on SIGTERM."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from gateway.web.limits import Limits, OneWrite, protocol_for
from tests.helpers import Harness, LiveServer, config, harness, poll, v2_body

HEADER_LIMIT = 8192
TIMEOUT_S = 0.5
DEADLINE_S = 20.0  # the longest any test here waits for the server


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[Harness, LiveServer]]:
    limits = Limits(max_header_bytes=HEADER_LIMIT, header_timeout_s=TIMEOUT_S,
                    body_timeout_s=TIMEOUT_S, max_connections=4)
    with harness(config()) as h, LiveServer(h.app, http=protocol_for(limits)) as live:
        yield h, live


def connect(live: LiveServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", live.port), timeout=DEADLINE_S)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection (or the deadline)."""
    out = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return out
        out += chunk


def response(raw: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in
               (line.split(":", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, orjson.loads(body) if body else None


def infer_head(length: int, extra: bytes = b"") -> bytes:
    """The request line and headers of a V2 infer POST with a ``length``-byte JSON body."""
    return (b"POST /v2/models/breast-cancer/infer HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            b"content-type: application/json\r\ncontent-length: %d\r\n%s\r\n"
            % (length, extra))


def get(path: str = "/v2", extra: bytes = b"") -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n".encode() + extra + b"\r\n"


def still_serves(live: LiveServer) -> None:
    with connect(live) as sock:
        sock.sendall(get(extra=b"connection: close\r\n"))
        assert response(read_all(sock))[0] == 200


@pytest.mark.parametrize("extra", [
    b"x-big: " + b"a" * (1 << 20) + b"\r\n",  # one 1 MB header
    b"".join(b"x-h%d: %s\r\n" % (i, b"b" * 100) for i in range(200)),  # many small ones
    b"x-almost: " + b"c" * (HEADER_LIMIT - 20) + b"\r\n",  # just over, with the rest
])
def test_headers_over_the_limit_are_431_and_closed(gateway: tuple[Harness, LiveServer],
                                                   extra: bytes) -> None:
    _, live = gateway
    with connect(live) as sock:
        request = get(extra=extra)
        sent = 0
        try:
            while sent < len(request):  # stop sending once the server answered and closed
                sent += sock.send(request[sent:sent + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw = read_all(sock)
    status, headers, body = response(raw)
    assert status == 431 and headers["connection"] == "close"
    assert body == {"error": f"request headers over the limit of {HEADER_LIMIT} bytes"}
    still_serves(live)


def test_headers_under_the_limit_are_served(gateway: tuple[Harness, LiveServer]) -> None:
    _, live = gateway
    with connect(live) as sock:
        sock.sendall(get(extra=b"x-fits: " + b"d" * (HEADER_LIMIT // 2) + b"\r\n"
                         b"connection: close\r\n"))
        assert response(read_all(sock))[0] == 200


def test_a_slowloris_client_is_disconnected(gateway: tuple[Harness, LiveServer]) -> None:
    """One byte every 20 ms, forever: the header timeout counts from the first byte."""
    _, live = gateway
    request = get(extra=b"x-slow: " + b"z" * 100_000 + b"\r\n")
    with connect(live) as sock:
        sock.settimeout(0.02)  # the attack's pace: a byte, then wait for an answer
        deadline = time.monotonic() + DEADLINE_S
        raw = b""
        for byte in request:
            assert time.monotonic() < deadline, "the server never cut the slow client off"
            try:
                sock.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            raw += chunk
            if not chunk:
                break
    status, headers, body = response(raw)
    assert status == 408 and headers["connection"] == "close"
    assert body == {"error": f"request headers not received within {TIMEOUT_S:g} s"}


def test_a_silent_connection_is_closed(gateway: tuple[Harness, LiveServer]) -> None:
    _, live = gateway
    with connect(live) as sock:
        status, _, body = response(read_all(sock))
    assert status == 408 and "headers not received" in body["error"]


def test_a_body_that_never_comes_is_408_and_leaves_no_record(
        gateway: tuple[Harness, LiveServer], holdout: list[dict[str, Any]]) -> None:
    h, live = gateway
    before = len(h.sink.records)
    body = orjson.dumps(v2_body([holdout[0]["features"]]))
    with connect(live) as sock:
        sock.sendall(infer_head(len(body)) + body[:10])
        status, headers, answer = response(read_all(sock))
    assert status == 408 and headers["connection"] == "close"
    assert answer == {"error": f"request body not received within {TIMEOUT_S:g} s"}
    assert len(h.sink.records) == before
    still_serves(live)


def test_keep_alive_requests_are_not_timed_out_between_them(
        gateway: tuple[Harness, LiveServer]) -> None:
    _, live = gateway
    with connect(live) as sock:
        for _ in range(3):
            sock.sendall(get())
            raw = b""
            while b"\r\n\r\n" not in raw or not raw.endswith(b"}"):
                raw += sock.recv(65536)
            assert response(raw)[0] == 200


def test_connections_beyond_the_limit_get_503(gateway: tuple[Harness, LiveServer]) -> None:
    _, live = gateway

    async def scenario() -> list[int]:
        held = []
        for _ in range(4):  # the limit: each served once, then idle on keep-alive
            reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
            writer.write(get())
            await reader.readuntil(b"}")
            held.append(writer)
        reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
        writer.write(get())
        raw = await asyncio.wait_for(reader.read(), DEADLINE_S)
        statuses = [response(raw)[0]]
        assert response(raw)[2] == {"error": "too many open connections; retry shortly"}
        assert response(raw)[1]["retry-after"] == "1"
        writer.close()
        for w in held:
            w.close()
            await w.wait_closed()
        return statuses

    assert asyncio.run(scenario()) == [503]
    # once they are gone, a new connection is served (the server notices the closes soon)
    deadline = time.monotonic() + DEADLINE_S
    while True:
        with connect(live) as sock:
            sock.sendall(get(extra=b"connection: close\r\n"))
            if response(read_all(sock))[0] == 200:
                break
        assert time.monotonic() < deadline


class _Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


class _Cycle:
    response_started = False


def test_one_write_joins_the_head_to_the_body_and_passes_the_rest() -> None:
    transport, cycle = _Recorder(), _Cycle()
    wrapped = OneWrite(transport, cycle)  # type: ignore[arg-type]
    wrapped.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # before the response: straight through
    cycle.response_started = True
    wrapped.write(b"HTTP/1.1 200 OK\r\n\r\n")  # the head: held
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    wrapped.write(b"first")  # the body's first write carries the head
    wrapped.write(b"second")
    assert transport.writes[1:] == [b"HTTP/1.1 200 OK\r\n\r\nfirst", b"second"]
    assert not wrapped.is_closing()  # anything else is the transport's


def test_one_write_flushes_a_held_head_on_close() -> None:
    transport, cycle = _Recorder(), _Cycle()
    wrapped = OneWrite(transport, cycle)  # type: ignore[arg-type]
    cycle.response_started = True
    wrapped.write(b"HTTP/1.1 200 OK\r\n\r\n")
    wrapped.close()
    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\n"] and transport.closed


def test_expect_100_continue_and_head_through_the_one_write_transport(
        gateway: tuple[Harness, LiveServer], holdout: list[dict[str, Any]]) -> None:
    h, live = gateway
    before = len(h.sink.records)
    body = orjson.dumps(v2_body([holdout[0]["features"]]))
    with connect(live) as sock:
        sock.sendall(infer_head(len(body), b"expect: 100-continue\r\n"))
        raw = b""
        while b"\r\n\r\n" not in raw:
            raw += sock.recv(65536)
        assert raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        raw = raw[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        while not raw.endswith(b"}"):
            raw += sock.recv(65536)
        status, headers, answer = response(raw)
        assert status == 200 and answer["outputs"]
        poll(lambda: len(h.sink.records) == before + 1, what="the paired record")
        assert int(headers["content-length"]) == len(raw.partition(b"\r\n\r\n")[2])
        sock.sendall(b"HEAD /v2 HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
        head = read_all(sock)
        assert head.startswith(b"HTTP/1.1 ") and head.endswith(b"\r\n\r\n")
