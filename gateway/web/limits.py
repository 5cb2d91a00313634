"""HTTP limits for ``shadowgate serve``: uvicorn's httptools protocol, bounded.

httptools has no limit of its own on header size, and uvicorn times out only idle keep-alive
connections, so a client could send a megabyte of headers or hold a connection by sending one
byte every few seconds (slowloris). This subclass bounds what one connection may take:

- request line + headers: at most ``max_header_bytes`` (431 JSON, then the connection closes);
- time to receive them: ``header_timeout_s`` from the connection's start or the request's
  first byte (408 JSON when nothing was answered yet, then close; a connection that sends
  nothing is closed too);
- time to receive the body: ``body_timeout_s`` from the end of the headers (408, close);
- open connections: ``max_connections`` (requests on more get 503 JSON and close).

Idle keep-alive connections close after uvicorn's ``timeout_keep_alive``. And one thing that
is not a limit: a response's status line and headers are held until its first body write and
go out with it (:class:`OneWrite`), one write system call per response instead of uvicorn's
two. ``protocol_for``
binds a set of limits; worker processes (``--workers N``) name :data:`FromEnv` instead, which
reads the ``SHADOWGATE_*`` settings in each worker.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gateway.settings import Settings

log = logging.getLogger("gateway.web")

LINGER_S = 2.0  # after a refusal, how long to read and drop what the client still sends


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int = 64 * 1024
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 2048

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.max_header_bytes, settings.header_timeout_s,
                   settings.body_timeout_s, settings.max_connections)


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing a request that is over a limit."""


async def _too_many_connections(scope: Any, receive: Any, send: Any) -> None:
    body = orjson.dumps({"error": "too many open connections; retry shortly"})
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class OneWrite:
    """The transport as one request/response cycle sees it: the write of the status line and
    headers (the first once the response has started) is held and joined to the next write,
    the body's, so that a small response costs one ``send`` system call and one TCP segment.
    Everything else (a ``100 Continue`` sent before the response, later body chunks, close,
    flow control) goes straight to the real transport; a held head is written before a
    close."""

    __slots__ = ("_cycle", "_head", "_state", "_transport")

    def __init__(self, transport: asyncio.Transport, cycle: Any) -> None:
        self._transport = transport
        self._cycle = cycle
        self._state = 0  # 0: head not written yet, 1: head held, 2: head sent
        self._head = b""

    def write(self, data: bytes) -> None:
        state = self._state
        if state == 2:
            self._transport.write(data)
        elif state == 1:
            self._state = 2
            self._transport.write(self._head + data)
            self._head = b""
        elif self._cycle.response_started:
            self._state, self._head = 1, data
        else:
            self._transport.write(data)

    def close(self) -> None:
        if self._state == 1:
            self._state = 2
            self._transport.write(self._head)
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class LimitedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of the module docstring."""

    limits: ClassVar[Limits] = Limits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit_concurrency = None  # checked here instead, to answer in JSON
        # One timer per connection, re-armed by writing a deadline, not by a call_later per
        # phase: see _arm.
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None  # when the current phase times out; None: idle
        self._phase = ("headers", 0.0)  # (what is awaited, its limit in seconds)
        self._in_headers = True  # receiving a request line and headers (or waiting for one)
        self._began = False  # a request began in the chunk being parsed
        self._chunk_bytes = 0  # header bytes in earlier chunks of this request
        self._header_bytes = 0  # header bytes parsed so far (request line and whole headers)
        self._discard = False  # refused: what still comes is read and dropped, then close

    # -- connection --

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout_s, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's own, plus: a refusal from a callback is answered here (uvicorn would say
        # 400), and headers still incomplete after this chunk count towards the limit.
        if self._discard:
            return
        self._unset_keepalive_if_required()
        self._began = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Refused):
                return
            self._invalid()
            return
        except httptools.HttpParserError:
            self._invalid()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_headers and not self.transport.is_closing():
            if not self._began:  # the chunk where a request began is counted by its callbacks
                self._chunk_bytes += len(data)
            if self._chunk_bytes > self.limits.max_header_bytes:
                self._refuse(431, f"request headers over the limit of "
                                  f"{self.limits.max_header_bytes} bytes")

    def _invalid(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)

    # -- parser callbacks --

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._began = True
        self._chunk_bytes = self._header_bytes = 0
        if self._deadline is None:
            self._arm(self.limits.header_timeout_s, "headers")

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._arm(self.limits.body_timeout_s, "body")
        limit = self.limits.max_connections
        if len(self.connections) > limit or len(self.tasks) >= limit:
            app, self.app = self.app, _too_many_connections
            try:
                super().on_headers_complete()
            finally:
                self.app = app
            return
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not before:
            cycle.transport = OneWrite(self.transport, cycle)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    # -- limits --

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.limits.max_header_bytes:
            self._refuse(431, f"request headers over the limit of "
                              f"{self.limits.max_header_bytes} bytes")
            raise _Refused

    def _arm(self, seconds: float, phase: str) -> None:
        """Time out ``phase`` in ``seconds``. A request arms two phases, so rather than a
        call_later and a cancel for each (about 4 us a request), this writes the deadline
        and keeps one timer per connection that never fires later than a deadline: it is
        set for at most the shortest limit ahead (every deadline lies at least that far
        ahead of when it is armed), and when it fires early it looks again."""
        self._deadline = self.loop.time() + seconds
        self._phase = (phase, seconds)
        if self._timer is None:
            self._timer = self.loop.call_later(self._step(), self._check)

    def _step(self) -> float:
        return min(self.limits.header_timeout_s, self.limits.body_timeout_s)

    def _disarm(self) -> None:
        self._deadline = None  # the timer, if pending, finds nothing to do and stops

    def _cancel_timer(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return
        now = self.loop.time()
        if now < deadline:
            self._timer = self.loop.call_later(min(deadline - now, self._step()), self._check)
            return
        self._deadline = None
        self._timed_out(*self._phase)

    def _timed_out(self, phase: str, seconds: float) -> None:
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if phase == "body" and cycle is not None and not cycle.response_complete:
            # The app waits in receive(): it now sees a disconnect, and what it sends later
            # goes nowhere, so the 408 below is the only answer.
            cycle.disconnected = True
            cycle.message_event.set()
        self._refuse(408, f"request {phase} not received within {seconds:g} s")

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` in JSON unless a response is under way, and close. The client
        may still be sending: a socket closed on unread or later data resets the connection,
        which can destroy the answer before the client reads it; so half-close, drop what
        comes, and close when the client does or after LINGER_S."""
        self._cancel_timer()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        log.info("HTTP %d to %s: %s; connection closed", status, client, message)
        cycle = self.cycle
        if cycle is None or cycle.response_complete or (
                cycle.disconnected and not cycle.response_started):
            body = orjson.dumps({"error": message})
            head = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:
                head += [name, b": ", value, b"\r\n"]
            head += [b"content-type: application/json\r\ncontent-length: ",
                     str(len(body)).encode(), b"\r\nconnection: close\r\n\r\n", body]
            self.transport.write(b"".join(head))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._discard = True
            self.flow.resume_reading()
            self._timer = self.loop.call_later(LINGER_S, self.transport.close)
            return
        self.transport.close()


def protocol_for(limits: Limits) -> type[LimitedHttpTools]:
    """The protocol class to pass as ``http=`` to uvicorn, with ``limits`` bound."""
    return type("LimitedHttpTools", (LimitedHttpTools,), {"limits": limits})


def __getattr__(name: str) -> Any:
    # "gateway.web.limits:FromEnv" for worker processes: each builds the limits from its
    # SHADOWGATE_* environment when uvicorn loads the protocol (not at import).
    if name == "FromEnv":
        return protocol_for(Limits.from_settings(Settings.from_env()))
    raise AttributeError(name)
