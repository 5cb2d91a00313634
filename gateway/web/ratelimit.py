"""Per-caller token buckets, in process: what one token may post per second.

Each caller (a token's name, or ``anonymous``) has a bucket of ``burst`` units that refills at
``rate`` units per second; a request that costs more than the bucket holds is refused whole
(429 with ``Retry-After``) and takes nothing. Buckets live in one process: with ``--workers N``
the limit applies per worker.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from gateway.errors import PayloadTooLarge, TooManyRequests
from gateway.metrics import Metrics


class TokenBucket:
    __slots__ = ("_clock", "_level", "_stamp", "burst", "rate")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._level = float(burst)
        self._stamp = clock()

    def take(self, cost: float) -> float:
        """Take ``cost`` units and return 0, or take nothing and return the seconds until
        they would be there."""
        now = self._clock()
        self._level = min(self.burst, self._level + (now - self._stamp) * self.rate)
        self._stamp = now
        if cost <= self._level:
            self._level -= cost
            return 0.0
        return (cost - self._level) / self.rate


class RateLimiter:
    """One bucket per caller name; ``what`` names the unit in messages (e.g. "labels")."""

    def __init__(self, limit: str, rate: float, burst: int, what: str, *,
                 metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.rate = rate
        self.burst = burst
        self.what = what
        self._metrics = metrics
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, name: str, cost: int) -> None:
        """Charge ``cost`` to ``name``; raises TooManyRequests (or PayloadTooLarge when one
        request costs more than a full bucket, which no wait would fix)."""
        if cost > self.burst:
            raise PayloadTooLarge(f"{cost} {self.what} in one request is more than the "
                                  f"{self.burst} this gateway takes at once; split it")
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = TokenBucket(self.rate, self.burst, self._clock)
        wait = bucket.take(cost)
        if wait > 0:
            if self._metrics is not None:
                self._metrics.rate_limited.labels(self.limit, name).inc()
            retry = max(1, math.ceil(wait))
            raise TooManyRequests(
                f"rate limit: {name!r} may send {self.rate:g} {self.what}/s (bursts of "
                f"{self.burst}); these {cost} {self.what} are over it, retry in {retry} s",
                retry)
