"""Watching what changes the served config: the file on disk, and the rollouts' states.

``FileWatcher`` watches the config file's directory (editors replace files by renaming a
temporary one, which a watch on the file itself would miss) and calls ``reload`` once changes
have settled for ``DEBOUNCE_MS``. On Linux it reads inotify on the event loop (inotify.py):
nothing runs while nothing changes. Elsewhere it uses watchfiles, whose thread checks for
changes every ``step`` ms (and takes the GIL to do so). ``StateWatcher`` polls the rollouts'
states in Redis (one MGET a second, none while no rollout is configured) so that every
replica routes by the same stage within about a second of the controller moving it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from gateway.rollout import inotify, store
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
        if inotify.available():
            await self._run_inotify()
            return
        from watchfiles import awatch

        async for changes in awatch(self.path.parent, debounce=DEBOUNCE_MS, step=200,
                                    stop_event=self.stop, recursive=False):
            if self.concerns(changes):
                await self._reload()

    async def _run_inotify(self) -> None:
        """Wait for an event naming the file, then for DEBOUNCE_MS without one, then reload."""
        loop = asyncio.get_running_loop()
        notify = inotify.Inotify(self.path.parent)
        changed = asyncio.Event()

        def readable() -> None:
            if self.path.name in notify.read_names():
                changed.set()

        loop.add_reader(notify.fd, readable)
        stopping = asyncio.ensure_future(self.stop.wait())
        try:
            while not self.stop.is_set():
                waiting = asyncio.ensure_future(changed.wait())
                await asyncio.wait((waiting, stopping), return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
                while changed.is_set() and not self.stop.is_set():  # settle
                    changed.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(DEBOUNCE_MS / 1000):
                            await self.stop.wait()
                if not self.stop.is_set():
                    await self._reload()
        finally:
            stopping.cancel()
            loop.remove_reader(notify.fd)
            notify.close()

    async def _reload(self) -> None:
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
