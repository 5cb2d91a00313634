"""Fallback load generator: asyncio protocols on raw sockets, HTTP/1.1 keep-alive.

Used when wrk is absent. One connection per unit of concurrency, each with one request in
flight; requests are pre-serialised bytes, responses are framed by Content-Length (or the
chunked terminator) without parsing the body. Latency is per request, perf_counter_ns.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from loadgen import LoadResult, LoadSpec, percentile

try:
    import uvloop

    LOOP_FACTORY: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
except ImportError:  # plain asyncio is slower but works
    LOOP_FACTORY = None

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
RECONNECT_PAUSE_S = 0.05


@dataclass
class Tally:
    """What the measured window saw; shared by the connections of one run."""

    window_start_ns: int
    window_end_ns: int
    latencies_ns: list[int] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    socket_errors: int = 0
    done_ns: list[int] | None = None  # when each latency was taken, if asked for

    def record(self, sent_ns: int, done_ns: int, status: int) -> None:
        if self.window_start_ns <= done_ns <= self.window_end_ns:
            self.latencies_ns.append(done_ns - sent_ns)
            self.statuses[status] += 1
            if self.done_ns is not None:
                self.done_ns.append(done_ns)


class Connection(asyncio.Protocol):
    """Sends the next request as soon as the previous response is complete."""

    def __init__(self, next_request: Callable[[], bytes], tally: Tally) -> None:
        self.next_request = next_request
        self.tally = tally
        self.buffer = bytearray()
        self.sent_ns = 0
        self.transport: asyncio.Transport | None = None
        self.finished: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._send()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        frame = response_end(self.buffer)
        if frame is None:
            return
        done_ns = time.perf_counter_ns()
        self.tally.record(self.sent_ns, done_ns, int(self.buffer[9:12]))
        del self.buffer[:frame]
        if done_ns < self.tally.window_end_ns:
            self._send()
        elif self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_result(time.perf_counter_ns() >= self.tally.window_end_ns)

    def _send(self) -> None:
        assert self.transport is not None
        self.sent_ns = time.perf_counter_ns()
        self.transport.write(self.next_request())


def response_end(buffer: bytearray) -> int | None:
    """Offset just past the first complete response in ``buffer``, or None if incomplete."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = bytes(buffer[:head_end]).lower()
    start = head.find(b"\r\ncontent-length:")
    if start >= 0:
        stop = head.find(b"\r\n", start + 2)
        length = int(head[start + 17: stop if stop >= 0 else len(head)])
        end = head_end + 4 + length
        return end if len(buffer) >= end else None
    if b"\r\ntransfer-encoding: chunked" in head:
        last = buffer.find(b"\r\n0\r\n\r\n", head_end)
        return last + 7 if last >= 0 else None
    return head_end + 4  # no body (e.g. 204)


def cycler(requests: list[bytes]) -> Callable[[], bytes]:
    position = -1

    def next_request() -> bytes:
        nonlocal position
        position = (position + 1) % len(requests)
        return requests[position]

    return next_request


async def _drive(spec: LoadSpec, next_request: Callable[[], bytes], tally: Tally) -> None:
    """Keep one connection busy until the window closes; reconnect after a socket error."""
    loop = asyncio.get_running_loop()
    while time.perf_counter_ns() < tally.window_end_ns:
        try:
            transport, conn = await asyncio.wait_for(loop.create_connection(
                lambda: Connection(next_request, tally), spec.host, spec.port), spec.timeout_s)
        except (OSError, TimeoutError):
            tally.socket_errors += 1
            await asyncio.sleep(RECONNECT_PAUSE_S)
            continue
        try:
            clean = await asyncio.wait_for(conn.finished, _time_left(spec, tally))
        except TimeoutError:
            clean = False
        finally:
            transport.close()
        if not clean:
            tally.socket_errors += 1


def _time_left(spec: LoadSpec, tally: Tally) -> float:
    return (tally.window_end_ns - time.perf_counter_ns()) / NS_PER_S + spec.timeout_s


async def _measure(spec: LoadSpec) -> Tally:
    requests = spec.workload.raw(spec.host, spec.port)
    now = time.perf_counter_ns()
    start = now + int(spec.warmup_s * NS_PER_S)
    tally = Tally(start, start + int(spec.duration_s * NS_PER_S))
    next_request = cycler(requests)
    drivers = [_drive(spec, next_request, tally) for _ in range(spec.concurrency)]
    await asyncio.gather(*drivers)
    return tally


def run(spec: LoadSpec) -> LoadResult:
    """Warm-up then measured window on the same connections; CPU is this process's over both."""
    cpu_before = time.process_time()
    with asyncio.Runner(loop_factory=LOOP_FACTORY) as runner:
        tally = runner.run(_measure(spec))
    return result(tally, time.process_time() - cpu_before)


def result(tally: Tally, cpu_s: float) -> LoadResult:
    """What a measured window saw, as a LoadResult (shared with the open-loop generator)."""
    latencies = sorted(tally.latencies_ns)
    ok = sum(n for status, n in tally.statuses.items() if 200 <= status < 300)
    return LoadResult(
        generator="python",
        requests=len(latencies),
        elapsed_s=(tally.window_end_ns - tally.window_start_ns) / NS_PER_S,
        p50_ms=percentile(latencies, 50) / NS_PER_MS,
        p99_ms=percentile(latencies, 99) / NS_PER_MS,
        non_2xx=len(latencies) - ok,
        socket_errors=tally.socket_errors,
        generator_cpu_s=cpu_s,
    )
