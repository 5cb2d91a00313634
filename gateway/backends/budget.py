"""CpuBudget: how much CPU time the local shadow models may take, all together.

A token bucket of CPU seconds: it refills at ``share`` CPU-seconds per second of wall time
(0.5: half of one core) and holds at most ``share * window_s`` of them, so that idle time
does not bank a burst that would then take a core for long. A shadow micro-batch runs while
the bucket is not empty and is charged what it cost afterwards (the CPU time of the thread
or process that ran it); work beyond the budget is shed by the caller, never queued.
"""

from __future__ import annotations

import time
from collections.abc import Callable

WINDOW_S = 0.2


class CpuBudget:
    """Shared by every shadow worker of a gateway; ``share`` None means no limit."""

    def __init__(self, share: float | None, *, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.window_s = window_s
        self.share = share
        self.spent_s = 0.0  # CPU seconds charged so far (for metrics and tests)
        self._tokens = 0.0 if share is None else share * window_s
        self._at = clock()

    def set_share(self, share: float | None) -> None:
        """A new share (config reload); what is in the bucket is kept, within the new cap."""
        self._refill()
        self.share = share
        if share is not None:
            self._tokens = min(self._tokens, share * self.window_s)

    def available(self) -> bool:
        """Whether a batch may run now."""
        if self.share is None:
            return True
        self._refill()
        return self._tokens > 0

    def charge(self, cpu_s: float) -> None:
        """Take what a batch cost; the bucket may go below zero (the next batches wait)."""
        self.spent_s += cpu_s
        if self.share is not None:
            self._refill()
            self._tokens -= cpu_s

    def _refill(self) -> None:
        now = self.clock()
        if self.share is not None:
            self._tokens = min(self.share * self.window_s,
                               self._tokens + (now - self._at) * self.share)
        self._at = now
