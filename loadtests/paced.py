"""Open-loop load at a fixed rate: what an app sees at a given traffic level, not at saturation.

``bench.py --rate 4000`` offers every setup the same requests per second, whether the server
keeps up or not, over a pool of keep-alive connections. Requests become due on a schedule; a
due request goes out on an idle connection, or waits in the generator's backlog until one is
free. Latency is counted from when the request became due (the tick that found it due, about
every millisecond), so time spent waiting for a busy server is counted, not hidden
(coordinated omission). A server that cannot keep up shows it as a lower achieved rate and a
growing p99.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import cast

from loadgen import LoadResult, LoadSpec
from pygen import LOOP_FACTORY, NS_PER_S, Tally, cycler, response_end, result

TICK_S = 0.001  # uvloop timers have millisecond resolution: a shorter sleep would spin


class Pool:
    """Idle connections and the backlog of due requests (the time each became due, in ns)."""

    def __init__(self, next_request: Callable[[], bytes], tally: Tally) -> None:
        self.next_request = next_request
        self.tally = tally
        self.idle: deque[PacedConnection] = deque()
        self.backlog: deque[int] = deque()
        self.closing = False

    def due(self, count: int, now_ns: int) -> None:
        self.backlog.extend([now_ns] * count)
        self.dispatch()

    def dispatch(self) -> None:
        while self.idle and self.backlog:
            self.idle.popleft().send(self.backlog.popleft())


class PacedConnection(asyncio.Protocol):
    """One keep-alive connection that takes due requests from the pool, one at a time."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.buffer = bytearray()
        self.due_ns = 0
        self.busy = False
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._idle()

    def send(self, due_ns: int) -> None:
        assert self.transport is not None
        self.due_ns, self.busy = due_ns, True
        self.transport.write(self.pool.next_request())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        frame = response_end(self.buffer)
        if frame is None:
            return
        self.pool.tally.record(self.due_ns, time.perf_counter_ns(), int(self.buffer[9:12]))
        del self.buffer[:frame]
        self.busy = False
        self._idle()

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.pool.idle:
            self.pool.idle.remove(self)
        if self.busy and not self.pool.closing:
            self.pool.tally.socket_errors += 1
            self.pool.backlog.appendleft(self.due_ns)  # the request is retried, late
        if not self.lost.done():
            self.lost.set_result(None)

    def _idle(self) -> None:
        self.pool.idle.append(self)
        self.pool.dispatch()


async def _keep_open(spec: LoadSpec, pool: Pool) -> None:
    """One connection slot: (re)connect until the window closes."""
    loop = asyncio.get_running_loop()
    while not pool.closing:
        try:
            transport, conn = await asyncio.wait_for(
                loop.create_connection(lambda: PacedConnection(pool), spec.host, spec.port),
                spec.timeout_s)
        except (OSError, TimeoutError):
            pool.tally.socket_errors += 1
            await asyncio.sleep(0.05)
            continue
        try:
            await conn.lost
        finally:
            transport.close()


async def _measure(spec: LoadSpec, timed: bool = False) -> Tally:
    start = time.perf_counter_ns()
    window = start + int(spec.warmup_s * NS_PER_S)
    tally = Tally(window, window + int(spec.duration_s * NS_PER_S),
                  done_ns=[] if timed else None)
    pool = Pool(cycler(spec.workload.raw(spec.host, spec.port)), tally)
    slots = [asyncio.create_task(_keep_open(spec, pool)) for _ in range(spec.concurrency)]
    issued = 0
    now = start
    while now < tally.window_end_ns:
        due = int((now - start) * spec.rate / NS_PER_S) - issued
        if due > 0:
            pool.due(due, now)
            issued += due
        await asyncio.sleep(TICK_S)
        now = time.perf_counter_ns()
    pool.closing = True
    for conn in list(pool.idle):
        if conn.transport is not None:
            conn.transport.close()
    for task in slots:
        task.cancel()
    await asyncio.gather(*slots, return_exceptions=True)
    return tally


def run(spec: LoadSpec) -> LoadResult:
    """Offer ``spec.rate`` requests/s over ``spec.concurrency`` connections."""
    return _run(spec, timed=False)[0]


def run_timed(spec: LoadSpec) -> tuple[LoadResult, list[tuple[int, int]]]:
    """``run``, plus each request's (completion time, latency) in ns, on the
    ``time.perf_counter_ns`` clock."""
    return _run(spec, timed=True)


def _run(spec: LoadSpec, timed: bool) -> tuple[LoadResult, list[tuple[int, int]]]:
    if spec.rate <= 0:
        raise ValueError("paced.run needs a rate above 0")
    cpu_before = time.process_time()
    with asyncio.Runner(loop_factory=LOOP_FACTORY) as runner:
        tally = runner.run(_measure(spec, timed))
    times = list(zip(tally.done_ns or [], tally.latencies_ns, strict=True)) if timed else []
    return result(tally, time.process_time() - cpu_before), times
