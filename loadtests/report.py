"""Summarise the measured cells: one row per (setup, load), ratios to the floor, targets.

A load is a concurrency (closed loop) or an offered rate (open loop, ``rate`` > 0). The
issue's targets are closed-loop bars; open-loop rows compare latency at equal traffic.

With several rounds per cell, ``best`` keeps each metric's best value (highest requests/s,
lowest p50 and p99: background noise only ever makes them worse); ``median`` keeps medians.
Errors are summed over the rounds so that none is hidden.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

Pick = Literal["best", "median"]

# The closed-loop bars of the performance issue (#14), which replaced the serving-core and
# traffic issues' 0.9x and 0.8x (set against a floor estimated at a quarter of what it serves).
# setup -> (min requests/s ratio, max p99 ratio or None), checked at these concurrencies
TARGETS: dict[str, tuple[float, float | None]] = {
    "v2": (0.65, None),
    "predict": (0.65, None),
    "full-v2": (0.5, None),
    "full-predict": (0.5, None),
}
TARGET_CONCURRENCIES = (16, 64)
# the full setup's requests/s against each peer's, at the same concurrency
PEER_TARGET = 3.5
PEER_TARGET_SETUPS = ("full-v2", "full-predict")


@dataclass(frozen=True)
class Cell:
    """One measured run of one setup at one concurrency.

    CPU percentages are of one core over the whole cell, warm-up included: the load
    generator, the server under test (with its children) and everything else on the machine
    (the other servers of this run, other users): a high ``background`` marks a noisy cell.
    """

    setup: str
    concurrency: int
    round: int
    generator: str
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    generator_cpu_pct: float
    server_cpu_pct: float
    background_cpu_pct: float
    dropped: int = 0  # shadow jobs and log records the gateway dropped during the cell
    rate: float = 0.0  # offered requests/s (open loop); 0: closed loop
    cpu_us_per_request: float = math.nan  # server (+ children) CPU per request served

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


@dataclass(frozen=True)
class Row:
    """The summary of one (setup, load) over its rounds."""

    setup: str
    concurrency: int
    rate: float
    rounds: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    dropped: int
    generator_cpu_pct: float
    server_cpu_pct: float
    background_cpu_pct: float
    cpu_us: float = math.nan
    rps_ratio: float | None = None
    p99_ratio: float | None = None
    cpu_ratio: float | None = None
    target: str = ""


def summarise(cells: Sequence[Cell], pick: Pick, baseline: str) -> list[Row]:
    groups: dict[tuple[str, int, float], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.setup, cell.concurrency, cell.rate), []).append(cell)
    rows = {key: _row(group, pick) for key, group in groups.items()}
    return [_compare(row, rows.get((baseline, row.concurrency, row.rate)))
            for row in rows.values()]


def _row(cells: list[Cell], pick: Pick) -> Row:
    high: Callable[[Iterable[float]], float] = max if pick == "best" else statistics.median
    low: Callable[[Iterable[float]], float] = min if pick == "best" else statistics.median
    return Row(
        setup=cells[0].setup,
        concurrency=cells[0].concurrency,
        rate=cells[0].rate,
        rounds=len(cells),
        rps=high(c.rps for c in cells),
        p50_ms=low(c.p50_ms for c in cells),
        p99_ms=low(c.p99_ms for c in cells),
        errors=sum(c.errors for c in cells),
        dropped=sum(c.dropped for c in cells),
        generator_cpu_pct=statistics.median(c.generator_cpu_pct for c in cells),
        server_cpu_pct=statistics.median(c.server_cpu_pct for c in cells),
        background_cpu_pct=statistics.median(c.background_cpu_pct for c in cells),
        cpu_us=statistics.median(c.cpu_us_per_request for c in cells),
    )


def _compare(row: Row, floor: Row | None) -> Row:
    if floor is None or floor.rps <= 0 or not floor.p99_ms > 0:
        return row
    rps_ratio, p99_ratio = row.rps / floor.rps, row.p99_ms / floor.p99_ms
    cpu_ratio = row.cpu_us / floor.cpu_us if floor.cpu_us > 0 else None
    return replace(row, rps_ratio=rps_ratio, p99_ratio=p99_ratio,
                   cpu_ratio=None if cpu_ratio is None or math.isnan(cpu_ratio) else cpu_ratio,
                   target=_verdict(row, rps_ratio, p99_ratio))


def _verdict(row: Row, rps_ratio: float, p99_ratio: float) -> str:
    target = TARGETS.get(row.setup)
    if target is None or row.rate or row.concurrency not in TARGET_CONCURRENCIES:
        return ""
    min_rps, max_p99 = target
    ok = (row.errors == 0 and row.dropped == 0 and rps_ratio >= min_rps
          and (max_p99 is None or p99_ratio <= max_p99))
    return "ok" if ok else "MISS"


COLUMNS = (
    ("setup", 14), ("conc", 5), ("offered", 8), ("req/s", 9), ("p50 ms", 8), ("p99 ms", 8),
    ("errors", 7), ("dropped", 8), ("rps/floor", 10), ("p99/floor", 10), ("gen cpu%", 9),
    ("srv cpu%", 9), ("bg cpu%", 8), ("cpu us/req", 11), ("cpu/floor", 10), ("target", 7),
)


def table(rows: Sequence[Row], failed: dict[str, str], order: Sequence[str]) -> str:
    """Rows grouped by load, setups in ``order``; failed setups get one line."""
    lines = ["  ".join(name.rjust(width) for name, width in COLUMNS)]
    for load in sorted({(row.rate, row.concurrency) for row in rows}):
        by_setup = {row.setup: row for row in rows if (row.rate, row.concurrency) == load}
        lines += [_line(by_setup[name]) for name in order if name in by_setup]
    lines += [f"{name.rjust(COLUMNS[0][1])}  FAILED: {why}" for name, why in failed.items()]
    return "\n".join(lines)


def _line(row: Row) -> str:
    values = (
        row.setup, str(row.concurrency), f"{row.rate:.0f}" if row.rate else "-",
        f"{row.rps:.0f}", _num(row.p50_ms), _num(row.p99_ms),
        str(row.errors), str(row.dropped), _ratio(row.rps_ratio), _ratio(row.p99_ratio),
        f"{row.generator_cpu_pct:.0f}", f"{row.server_cpu_pct:.0f}",
        f"{row.background_cpu_pct:.0f}", _num(row.cpu_us, 0), _ratio(row.cpu_ratio),
        row.target,
    )
    return "  ".join(v.rjust(width) for v, (_, width) in zip(values, COLUMNS, strict=True))


def _num(value: float, digits: int = 2) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def peer_table(rows: Sequence[Row], order: Sequence[str], peers: Sequence[str]) -> str:
    """For each load, every non-peer setup's requests/s divided by each peer's, with the
    issue's verdict on the full setups' rows (>= PEER_TARGET against every peer present,
    closed loop at the target concurrencies); empty without a peer."""
    lines = []
    for load in sorted({(row.rate, row.concurrency) for row in rows}):
        by_setup = {row.setup: row for row in rows if (row.rate, row.concurrency) == load}
        present = [p for p in peers if p in by_setup and by_setup[p].rps > 0]
        if not present:
            continue
        where = f"{load[0]:.0f}/s" if load[0] else f"c{load[1]}"
        for name in order:
            if name in by_setup and name not in peers:
                values = [by_setup[name].rps / by_setup[p].rps for p in present]
                ratios = "  ".join(f"{v:5.2f}x {p}" for v, p in zip(values, present,
                                                                    strict=True))
                verdict = ""
                if (name in PEER_TARGET_SETUPS and not load[0]
                        and load[1] in TARGET_CONCURRENCIES):
                    verdict = "   ok" if min(values) >= PEER_TARGET else "   MISS"
                lines.append(f"  {where:>7}  {name:>14}  {ratios}{verdict}")
    return "\n".join(lines)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"
