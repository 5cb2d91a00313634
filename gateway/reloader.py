"""Config reloads: read and validate the file whole, then hand it to Serving; never half.

Triggered by a change of the file (gateway/rollout/watcher.py), by SIGHUP, or by the admin
API. An invalid file never replaces the running config: its errors (with key paths, as
``shadowgate validate`` prints them) are logged, kept for the admin status and counted in
``shadowgate_config_reloads_total{result="invalid"}``; a valid file whose models cannot be
loaded counts as ``failed`` and changes nothing either.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gateway.config.load import LoadedConfig, load
from gateway.errors import ConfigError
from gateway.metrics import Metrics
from gateway.serving import Serving

log = logging.getLogger(__name__)

Result = Literal["applied", "unchanged", "invalid", "failed"]


@dataclass(frozen=True)
class ReloadResult:
    result: Result
    revision: str | None
    at: float
    errors: list[str] = field(default_factory=list)


class Reloader:
    """Reloads ``path`` into ``serving``; one reload at a time."""

    def __init__(self, path: Path, serving: Serving, metrics: Metrics, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.serving = serving
        self.metrics = metrics
        self.clock = clock
        self.last: ReloadResult | None = None
        self._lock = asyncio.Lock()

    async def reload(self) -> ReloadResult:
        async with self._lock:
            result = await self._reload()
        self.last = result
        self.metrics.config_reloads.labels(result.result).inc()
        return result

    async def _reload(self) -> ReloadResult:
        now = self.clock()
        try:
            loaded: LoadedConfig = await asyncio.to_thread(load, self.path)
        except ConfigError as exc:
            log.error("config %s is invalid; the running config (revision %s) stays:\n  %s",
                      self.path, self._revision(), "\n  ".join(exc.errors))
            return ReloadResult("invalid", None, now, list(exc.errors))
        current = self.serving.loaded
        if current is not None and current.revision == loaded.revision:
            return ReloadResult("unchanged", loaded.revision, now)
        try:
            await self.serving.apply(loaded)
        except ConfigError as exc:
            log.error("config %s (revision %s) cannot be served; the running config stays:"
                      "\n  %s", self.path, loaded.revision, "\n  ".join(exc.errors))
            return ReloadResult("failed", loaded.revision, now, list(exc.errors))
        log.info("config %s reloaded: revision %s", self.path, loaded.revision)
        return ReloadResult("applied", loaded.revision, now)

    def _revision(self) -> str | None:
        current = self.serving.loaded
        return current.revision if current is not None else None
