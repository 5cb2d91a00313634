"""Graceful drain on SIGTERM, for load balancers.

On the first SIGTERM (or SIGINT) readiness turns false at once, and the server's own signal
handler (uvicorn's, which stops accepting, closes idle keep-alive connections and closes busy
ones after their current response) runs only ``drain_s`` seconds later, so that a load
balancer sees the replica go unready and moves traffic away while every request is still
answered. A second signal ends the drain at once. With ``drain_s`` 0 the server stops as
before, readiness turning false first.

uvicorn offers no hook between the signal and closing its listeners, and its worker
processes (``--workers N``) build their own Server; wrapping the handler that uvicorn
installed, from the app's lifespan in each process, works the same in both cases. Only a
process that serves this app alone does it (``shadowgate serve``); it is undone at exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
Handler = Callable[[int, FrameType | None], Any]


class Drain:
    """Delays the server's exit on a signal by ``drain_s``, calling ``on_drain`` first."""

    def __init__(self, drain_s: float, on_drain: Callable[[], None],
                 loop: asyncio.AbstractEventLoop) -> None:
        self.drain_s = drain_s
        self._on_drain = on_drain
        self._loop = loop
        self._previous: dict[int, Handler] = {}
        self._pending: asyncio.TimerHandle | None = None
        self.draining = False

    def install(self) -> bool:
        """Wrap the handlers the server installed for SIGTERM and SIGINT; False (and nothing
        done) outside the main thread or where no server handles them."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for sig in (int(s) for s in SIGNALS):
            current = signal.getsignal(sig)
            if callable(current) and current is not signal.default_int_handler:
                self._previous[sig] = current
        for sig in self._previous:
            signal.signal(sig, self.handle)
        return bool(self._previous)

    def uninstall(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
        for sig, handler in self._previous.items():
            if signal.getsignal(sig) == self.handle:
                signal.signal(sig, handler)

    def handle(self, sig: int, frame: FrameType | None) -> None:
        """The signal handler: runs between two bytecodes of the loop's thread, so it only
        hands the work to the loop."""
        self._loop.call_soon_threadsafe(self.begin, sig)

    def begin(self, sig: int) -> None:
        """First signal: not ready, and the server's handler in ``drain_s``; a second one:
        the server's handler now."""
        if self.draining:
            log.info("second %s: ending the drain now", signal.Signals(sig).name)
            self.end(sig)
            return
        self.draining = True
        self._on_drain()
        if self.drain_s <= 0:
            self.end(sig)
            return
        log.warning("%s: not ready any more; serving for %g s more while load balancers "
                    "drain this replica (send it again to stop now)",
                    signal.Signals(sig).name, self.drain_s)
        self._pending = self._loop.call_later(self.drain_s, self.end, sig)

    def end(self, sig: int) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        previous = self._previous.get(sig) or next(iter(self._previous.values()), None)
        if previous is not None:
            previous(sig, None)
