"""The access log: one line per request, logfmt or JSON.

``SHADOWGATE_ACCESS_LOG``: ``off`` (the default, as uvicorn's ``--no-access-log``), ``on``
(logfmt: ``key=value``, values quoted as JSON strings when they hold anything but plain
characters) or ``json`` (one JSON object a line). With ``SHADOWGATE_ACCESS_LOG_SAMPLE`` < 1,
that share of the successful requests is written.

A failed inference request (any 4xx or 5xx of infer, /predict or gRPC ModelInfer) is always
written, whatever the mode and the sample, with its status, error code, message and request
id. With the access log off, such lines go through Python logging (logger
``gateway.access``: 4xx at INFO, 5xx at ERROR), with the gateway's other messages.

With it on, lines are written by the gateway itself to stderr, a batch at a time: a line
waits at most ``FLUSH_S`` (or until ``MAX_LINES`` are waiting, or a 5xx), and the lifespan
flushes what is left at shutdown. Going through ``logging`` instead (a LogRecord, a
formatter that formats the time, a write and a flush per line) cost ~27 us of CPU a line on
the 2-core development machine, more than the rest of a request's path; this costs ~4 us.
Nothing a caller sent is written unquoted, so a newline in a path or a message cannot start
a forged line.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import re
import sys
import time
from collections.abc import Callable
from typing import Any, Literal, TextIO

import orjson

AccessMode = Literal["off", "on", "json"]
log = logging.getLogger("gateway.access")
_PLAIN = re.compile(r"[A-Za-z0-9_.:/@+-]+")


def quote(value: str) -> str:
    """A logfmt value: as it is when plain, else a JSON string (quotes, escapes)."""
    if _PLAIN.fullmatch(value):
        return value
    return orjson.dumps(value).decode()


# Methods, paths and model names repeat: quoted once each (a request id is new each time).
_quoted = functools.lru_cache(maxsize=2048)(quote)
_MILLIS = [f".{ms:03d}Z" for ms in range(1000)]


class AccessLog:
    """Formats and writes access lines; ``enabled``: successful requests are written."""

    FLUSH_S = 0.1
    MAX_LINES = 512

    def __init__(self, mode: AccessMode = "off", sample: float = 1.0, *,
                 stream: TextIO | None = None, logger: logging.Logger = log,
                 rand: Callable[[], float] = random.random,
                 clock: Callable[[], float] = time.time) -> None:
        """``stream``: where lines go when the log is on (default: stderr at each write);
        ``logger``: where failures go when it is off."""
        self.on = mode != "off"
        self.enabled = self.on and sample > 0
        self.json = mode == "json"
        self.sample = sample
        self.stream = stream
        self.logger = logger
        self.rand = rand
        self.clock = clock
        self._lines: list[str] = []
        self._second = -1
        self._stamp = ""

    def success(self, proto: str, method: str, path: str, status: int, duration_s: float,
                request_id: str, model: str | None = None, version: str | None = None,
                variant: str | None = None) -> None:
        """A request that succeeded (call only when ``enabled``)."""
        if self.sample < 1.0 and self.rand() >= self.sample:
            return
        self._add(self._line(proto, method, path, status, duration_s, request_id, model,
                             version, variant, None, None))

    def failure(self, proto: str, method: str, path: str, status: int, duration_s: float,
                request_id: str, code: str, message: str, model: str | None = None,
                version: str | None = None) -> None:
        """A request that failed: always written."""
        if self.on:
            self._add(self._line(proto, method, path, status, duration_s, request_id, model,
                                 version, None, code, message))
            if status >= 500:
                self.flush()
            return
        level = logging.ERROR if status >= 500 else logging.INFO
        if self.logger.isEnabledFor(level):
            self.logger.log(level, self._line(proto, method, path, status, duration_s,
                                              request_id, model, version, None, code, message,
                                              stamp=False))

    def flush(self) -> None:
        """Write what is waiting (the lifespan calls it at shutdown)."""
        if not self._lines:
            return
        text = "\n".join(self._lines) + "\n"
        self._lines.clear()
        stream = self.stream or sys.stderr
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: the lines are lost
            pass

    def _add(self, line: str) -> None:
        lines = self._lines
        lines.append(line)
        if len(lines) == 1:
            try:
                asyncio.get_running_loop().call_later(self.FLUSH_S, self.flush)
            except RuntimeError:  # no event loop here: write at once
                self.flush()
        elif len(lines) >= self.MAX_LINES:
            self.flush()

    def _time(self) -> str:
        """ISO 8601 UTC with milliseconds; the date and time part is formatted once a
        second."""
        now = self.clock()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return self._stamp + _MILLIS[int((now - second) * 1000)]

    def _line(self, proto: str, method: str, path: str, status: int, duration_s: float,
              request_id: str, model: str | None, version: str | None, variant: str | None,
              code: str | None, message: str | None, stamp: bool = True) -> str:
        ms = round(duration_s * 1000, 3)
        if self.json:
            fields: dict[str, Any] = {
                "ts": round(self.clock(), 6), "proto": proto, "method": method, "path": path,
                "status": status, "ms": ms, "request_id": request_id}
            if model is not None:
                fields.update(model=model, version=version)
            if variant is not None:
                fields["variant"] = variant
            if code is not None:
                fields.update(code=code, error=message)
            return orjson.dumps(fields).decode()
        line = (f"proto={proto} method={_quoted(method)} path={_quoted(path)} "
                f"status={status} ms={ms} request_id={quote(request_id)}")
        if stamp:
            line = f"ts={self._time()} {line}"
        if model is not None:
            line += f" model={_quoted(model)} version={_quoted(version or '')}"
        if variant is not None:
            line += f" variant={variant}"
        if code is not None:
            line += f" code={code} error={quote(message or '')}"
        return line
