"""The benchmark's own machinery: the open-loop generator and how the report groups its rows.

The load generators are what the performance claims rest on, so the parts that decide what
is measured are tested like the product: a real server, real sockets.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port, poll

LOADTESTS = Path(__file__).resolve().parent.parent / "loadtests"
sys.path.insert(0, str(LOADTESTS))

import paced  # noqa: E402
import report  # noqa: E402
import workloads  # noqa: E402
from loadgen import LoadSpec  # noqa: E402


def cell(setup: str, rps: float, p99: float, *, concurrency: int = 64,
         rate: float = 0.0) -> report.Cell:
    return report.Cell(setup=setup, concurrency=concurrency, round=0, generator="x",
                       requests=int(rps), rps=rps, p50_ms=p99 / 2, p99_ms=p99, non_2xx=0,
                       socket_errors=0, generator_cpu_pct=0, server_cpu_pct=0,
                       background_cpu_pct=0, rate=rate)


def test_open_and_closed_loop_rows_compare_with_the_floor_at_the_same_load() -> None:
    cells = [
        cell("floor", 10_000, 2.0), cell("v2", 9_500, 2.5),
        cell("floor", 3_000, 1.0, rate=3000), cell("v2", 3_000, 4.0, rate=3000),
        cell("floor", 5_000, 1.5, rate=5000), cell("v2", 5_000, 1.8, rate=5000),
    ]
    rows = {(r.setup, r.rate): r for r in report.summarise(cells, "best", "floor")}
    assert rows["v2", 0.0].rps_ratio == pytest.approx(0.95)
    assert rows["v2", 0.0].target == "ok"  # the issue's bars are closed-loop bars
    assert rows["v2", 3000].p99_ratio == pytest.approx(4.0)
    assert rows["v2", 5000].p99_ratio == pytest.approx(1.2)
    assert rows["v2", 3000].target == ""
    text = report.table(list(rows.values()), {}, ["floor", "v2"])
    assert len(text.splitlines()) == 7


def test_the_bars_are_the_performance_issues() -> None:
    cells = [cell("floor", 10_000, 2.0), cell("v2", 6_400, 2.5), cell("full-v2", 5_100, 9.0),
             cell("mlserver", 1_400, 3.0), cell("kserve", 1_500, 3.0)]
    rows = {r.setup: r for r in report.summarise(cells, "best", "floor")}
    assert rows["v2"].target == "MISS"  # 0.64x < 0.65x
    assert rows["full-v2"].target == "ok"  # 0.51x, and the closed loop has no p99 bar
    lines = report.peer_table(list(rows.values()), ["floor", "v2", "full-v2"],
                              ["mlserver", "kserve"]).splitlines()
    assert lines[-1].split()[-1] == "MISS"  # 3.64x MLServer but 3.40x KServe
    assert lines[-2].split()[-1] == "kserve"  # no peer bar for the champion-only setup


class FakeConnection:
    def __init__(self, pool: paced.Pool, sent: list[tuple[str, int]], name: str) -> None:
        self.pool, self.sent, self.name = pool, sent, name

    def send(self, due_ns: int) -> None:
        self.sent.append((self.name, due_ns))

    def done(self) -> None:
        self.pool.idle.append(self)  # type: ignore[arg-type]
        self.pool.dispatch()


def test_due_requests_wait_for_an_idle_connection_in_order() -> None:
    pool = paced.Pool(lambda: b"", tally=None)  # type: ignore[arg-type]
    sent: list[tuple[str, int]] = []
    a, b = FakeConnection(pool, sent, "a"), FakeConnection(pool, sent, "b")
    a.done()
    b.done()
    pool.due(3, now_ns=100)
    pool.due(1, now_ns=200)
    assert sent == [("a", 100), ("b", 100)]
    assert list(pool.backlog) == [100, 200]
    b.done()
    a.done()
    # Latency is counted from when a request fell due, not from when a connection freed up.
    assert sent[2:] == [("b", 100), ("a", 200)]
    assert not pool.backlog


@pytest.fixture
def http_only() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(LOADTESTS / "floor.py"), "--port", str(port), "--empty"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poll(lambda: _answers(port), timeout=30, what="floor.py --empty to answer")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
            return True
    except OSError:
        return False


def test_paced_offers_the_rate_whatever_the_connection_count(http_only: int) -> None:
    work = workloads.build("/infer", "v2", workloads.load_rows(rows=4), vary_users=False)
    result = paced.run(LoadSpec("127.0.0.1", http_only, work, concurrency=4, duration_s=1.0,
                                warmup_s=0.2, rate=400))
    assert result.errors == 0
    assert 360 <= result.requests <= 440  # what fell due in the window, not what 4 loops could do
    assert result.p50_ms < 100
