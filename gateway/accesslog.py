"""The access log: one line per request on the ``gateway.access`` logger, logfmt or JSON.

``SHADOWGATE_ACCESS_LOG``: ``off`` (the default, as uvicorn's ``--no-access-log``), ``on``
(logfmt: ``key=value``, values quoted as JSON strings when they hold anything but plain
characters) or ``json`` (one JSON object a line, with its own ``ts``). With
``SHADOWGATE_ACCESS_LOG_SAMPLE`` < 1, that share of the successful requests is logged.

A failed inference request (any 4xx or 5xx of infer, /predict or gRPC ModelInfer) is always
logged, whatever the mode and the sample, with its status, error code, message and request
id: 4xx at INFO, 5xx at ERROR. Nothing that a caller sent is written unquoted, so a newline
in a path or a message cannot start a forged line.
"""

from __future__ import annotations

import logging
import random
import re
import sys
import time
from collections.abc import Callable
from typing import Any, Literal

import orjson

AccessMode = Literal["off", "on", "json"]
log = logging.getLogger("gateway.access")
_PLAIN = re.compile(r"[A-Za-z0-9_.:/@+-]+")


def quote(value: str) -> str:
    """A logfmt value: as it is when plain, else a JSON string (quotes, escapes)."""
    if _PLAIN.fullmatch(value):
        return value
    return orjson.dumps(value).decode()


class AccessLog:
    """Writes access lines; ``enabled``: successful requests are logged (sampled)."""

    __slots__ = ("enabled", "json", "logger", "rand", "sample")

    def __init__(self, mode: AccessMode = "off", sample: float = 1.0,
                 logger: logging.Logger = log, rand: Callable[[], float] = random.random
                 ) -> None:
        self.enabled = mode != "off" and sample > 0
        self.json = mode == "json"
        self.sample = sample
        self.logger = logger
        self.rand = rand

    def success(self, proto: str, method: str, path: str, status: int, duration_s: float,
                request_id: str, model: str | None = None, version: str | None = None,
                variant: str | None = None) -> None:
        """A request that succeeded (call only when ``enabled``)."""
        if self.sample < 1.0 and self.rand() >= self.sample:
            return
        if not self.logger.isEnabledFor(logging.INFO):
            return
        self.logger.info(self._line(proto, method, path, status, duration_s, request_id, model,
                                    version, variant, None, None))

    def failure(self, proto: str, method: str, path: str, status: int, duration_s: float,
                request_id: str, code: str, message: str, model: str | None = None,
                version: str | None = None) -> None:
        """A request that failed: always written, 5xx at ERROR, else INFO."""
        level = logging.ERROR if status >= 500 else logging.INFO
        if self.logger.isEnabledFor(level):
            self.logger.log(level, self._line(proto, method, path, status, duration_s,
                                              request_id, model, version, None, code, message))

    def _line(self, proto: str, method: str, path: str, status: int, duration_s: float,
              request_id: str, model: str | None, version: str | None, variant: str | None,
              code: str | None, message: str | None) -> str:
        ms = round(duration_s * 1000, 3)
        if self.json:
            fields: dict[str, Any] = {
                "ts": round(time.time(), 6), "proto": proto, "method": method, "path": path,
                "status": status, "ms": ms, "request_id": request_id}
            if model is not None:
                fields.update(model=model, version=version)
            if variant is not None:
                fields["variant"] = variant
            if code is not None:
                fields.update(code=code, error=message)
            return orjson.dumps(fields).decode()
        line = (f"proto={proto} method={quote(method)} path={quote(path)} status={status} "
                f"ms={ms} request_id={quote(request_id)}")
        if model is not None:
            line += f" model={quote(model)} version={quote(version or '')}"
        if variant is not None:
            line += f" variant={variant}"
        if code is not None:
            line += f" code={code} error={quote(message or '')}"
        return line


def install_json_handler(mode: AccessMode, stream: Any = None) -> None:
    """For ``json``: the access logger writes bare JSON lines to stderr (no log prefix) and
    does not pass them on to the root logger. Called by the serving process only."""
    if mode != "json" or log.handlers:
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.propagate = False
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
