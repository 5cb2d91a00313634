"""What a load generator is asked to do and what it reports, whichever one runs."""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from typing import Literal

from workloads import Workload

GeneratorName = Literal["wrk", "python"]
GeneratorChoice = Literal["auto", "wrk", "python"]


@dataclass(frozen=True)
class LoadSpec:
    """One measured cell: ``concurrency`` keep-alive connections, warm-up then measure.

    Closed loop (``rate`` 0): each connection sends its next request when the last is answered.
    Open loop (``rate`` > 0): requests fall due at ``rate`` per second whatever the server does,
    and go out on whichever connection is idle.
    """

    host: str
    port: int
    workload: Workload
    concurrency: int
    duration_s: float
    warmup_s: float
    timeout_s: float = 5.0
    rate: float = 0.0  # requests/s offered open-loop (paced.py); 0: closed loop, one in flight


@dataclass(frozen=True)
class LoadResult:
    """Completed requests in the measured window; latencies in milliseconds.

    ``generator_cpu_s`` covers the whole cell, warm-up included.
    """

    generator: GeneratorName
    requests: int
    elapsed_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    generator_cpu_s: float

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def choose(choice: GeneratorChoice) -> GeneratorName:
    """``auto`` means wrk when it is on PATH, else the built-in Python generator."""
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if choice == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install -y wrk), use --generator python")
    return choice


def percentile(sorted_values: list[int], q: float) -> float:
    """Nearest-rank percentile of an ascending list (``q`` in 0..100); NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return float(sorted_values[rank - 1])

