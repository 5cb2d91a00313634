"""Watching what changes the served config: the file on disk, and the rollouts' states.

``FileWatcher`` watches the config file's directory (editors replace files by renaming a
temporary one, which a watch on the file itself would miss) with watchfiles, a maintained
Rust-backed watcher (inotify on Linux), and calls ``reload`` within about a second of a
change. ``StateWatcher`` polls the rollouts' states in Redis (one MGET) so that every replica
routes by the same stage within about a second of the controller moving it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from gateway.rollout import store
from gateway.rollout.state import RolloutState

log = logging.getLogger(__name__)

DEBOUNCE_MS = 200


class FileWatcher:
    """Calls ``reload`` when ``path`` changes (written in place, replaced or recreated)."""

    def __init__(self, path: Path, reload: Callable[[], Awaitable[Any]],
                 stop: asyncio.Event | None = None) -> None:
        self.path = path.resolve()
        self.reload = reload
        self.stop = stop or asyncio.Event()

    def concerns(self, changes: set[tuple[Any, str]]) -> bool:
        return any(Path(changed).resolve() == self.path for _, changed in changes)

    async def run(self) -> None:
        from watchfiles import awatch

        async for changes in awatch(self.path.parent, debounce=DEBOUNCE_MS, step=50,
                                    stop_event=self.stop, recursive=False):
            if self.concerns(changes):
                try:
                    await self.reload()
                except Exception:  # the watcher must outlive a bad reload
                    log.exception("config reload failed")


class StateWatcher:
    """Polls the rollouts' states; calls ``on_states`` when any version changed."""

    def __init__(self, redis: Redis, deployments: Callable[[], list[str]],
                 on_states: Callable[[dict[str, RolloutState]], Awaitable[None]],
                 interval_s: float = 1.0) -> None:
        self.redis = redis
        self.deployments = deployments
        self.on_states = on_states
        self.interval_s = interval_s
        self.versions: dict[str, int] = {}
        self._stop = asyncio.Event()

    async def run_once(self) -> bool:
        """One poll; True when the states changed (and ``on_states`` was called)."""
        names = self.deployments()
        states = await store.load_states(self.redis, names)
        versions = {name: state.version for name, state in states.items()}
        if versions == self.versions:
            return False
        self.versions = versions
        await self.on_states(states)
        return True

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_once()
            except Exception:  # Redis away: keep routing by the last known states
                log.warning("rollout states unavailable; routing stays as it is", exc_info=True)
            try:
                async with asyncio.timeout(self.interval_s):
                    await self._stop.wait()
            except TimeoutError:
                pass

    def stop(self) -> None:
        self._stop.set()
