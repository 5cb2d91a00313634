"""Does a heavy shadow slow the champion? Open loop, the same gateway with and without shadows.

    python loadtests/shadow_bench.py [--fraction 0.5 | --rate 5000] [--duration 8] [--rounds 3]
                                     [--modes none,inline,thread,process,default]

Every mode is one gateway serving the champion (``bc-logreg``) with two shadows of the heavy
bundled candidate (``bc-heavy``, loadtests/configs/heavy.yaml) at 100% sampling, differing only
in its ``mirror`` section:

| mode | mirror | what it shows |
|---|---|---|
| ``none`` | no shadows (configs/champion.yaml) | the baseline p99 |
| ``inline`` | ``isolation: inline``, no budget | shadow batches on the event loop |
| ``thread`` | ``isolation: thread``, no budget | a thread per shadow model (GIL hand-offs) |
| ``process`` | ``isolation: process``, no budget | the niced shadow process |
| ``default`` | the defaults (``auto``, ``cpu_budget: 0.5``) | the process, and shedding |
| ``inline-budget`` | ``isolation: inline``, ``cpu_budget: 0.5`` | shedding alone |
| ``tight`` | the defaults with ``cpu_budget: 0.1`` | a budget the heavy shadows exceed |

The offered rate is ``--rate``, or ``--fraction`` of the champion-only gateway's capacity
measured first (wrk, 16 connections, 3 s). Rounds alternate the order of the modes. The table
gives, per mode, the champion's p50 and p99 as the client sees them (medians over rounds),
p99 against ``none``, the server's CPU (gateway, embedded Redis, shadow process), and per
second: shadow jobs that ran, were shed (over the budget) or dropped (full queue), and the
deepest shadow queue seen (``/metrics`` polled every 0.5 s).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paced
import servers
import setups
import workloads
import wrkgen
import yaml
from loadgen import LoadSpec

MODES: dict[str, dict[str, Any] | None] = {
    "none": None,
    "inline": {"isolation": "inline", "cpu_budget": None},
    "thread": {"isolation": "thread", "cpu_budget": None},
    "process": {"isolation": "process", "cpu_budget": None},
    "default": {},
    "inline-budget": {"isolation": "inline", "cpu_budget": 0.5},
    "tight": {"cpu_budget": 0.1},
}
PATH = "/v2/models/breast-cancer/infer"
_SAMPLE = re.compile(r'^(shadowgate_shadow_(?:dropped|results)_total|shadowgate_shadow_queue_depth)'
                     r'\{([^}]*)\} ([0-9.e+-]+)$', re.M)


@dataclass
class Cell:
    mode: str
    p50_ms: float
    p99_ms: float
    rps: float
    cpu_pct: float
    ran: float = 0.0
    shed: float = 0.0
    dropped: float = 0.0
    max_queue: float = 0.0


@dataclass
class Counters:
    ran: float = 0.0
    shed: float = 0.0
    dropped: float = 0.0
    depths: list[float] = field(default_factory=list)


def config_for(mode: str, directory: Path) -> Path:
    """The mode's config file (absolute model paths), written into ``directory``."""
    mirror = MODES[mode]
    source = setups.CONFIGS / ("champion.yaml" if mirror is None else "heavy.yaml")
    data = yaml.safe_load(source.read_text())
    data["model_repository"] = str(setups.REPO_ROOT / "models")
    for model in data["models"]:
        if "path" in model:
            model["path"] = str((source.parent / model["path"]).resolve())
    if mirror:
        data["mirror"] = mirror
    path = directory / f"{mode}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def scrape(port: int) -> Counters:
    with urllib.request.urlopen(f"http://{servers.HOST}:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    counters = Counters()
    for name, labels, value in _SAMPLE.findall(text):
        number = float(value)
        if name.endswith("queue_depth"):
            counters.depths.append(number)
        elif name.endswith("results_total"):
            counters.ran += number
        elif 'reason="shed"' in labels:
            counters.shed += number
        else:
            counters.dropped += number
    return counters


def measure(mode: str, server: servers.Server, workload: workloads.Workload, rate: float,
            args: argparse.Namespace) -> Cell:
    before, cpu_before, started = scrape(server.port), servers.cpu_seconds(server.pid), \
        time.monotonic()
    depths: list[float] = []
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.5):
            depths.extend(scrape(server.port).depths)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    result = paced.run(LoadSpec(servers.HOST, server.port, workload, 64, args.duration, 1.0,
                                rate=rate))
    done.set()
    poller.join()
    wall = time.monotonic() - started
    after = scrape(server.port)
    seconds = args.duration + 1.0
    return Cell(mode, result.p50_ms, result.p99_ms, result.rps,
                100 * (servers.cpu_seconds(server.pid) - cpu_before) / wall,
                (after.ran - before.ran) / seconds, (after.shed - before.shed) / seconds,
                (after.dropped - before.dropped) / seconds, max(depths + after.depths,
                                                                default=0.0))


def capacity(server: servers.Server, workload: workloads.Workload) -> float:
    spec = LoadSpec(servers.HOST, server.port, workload, 16, 3.0, 1.0)
    return wrkgen.run(spec).rps


def summarise(cells: list[Cell], modes: list[str]) -> str:
    head = (f"{'mode':>14} {'p50 ms':>7} {'p99 ms':>7} {'p99/none':>9} {'req/s':>7} "
            f"{'srv cpu%':>8} {'ran/s':>7} {'shed/s':>7} {'dropped/s':>9} {'max queue':>9}")
    lines = [head]
    medians: dict[str, dict[str, float]] = {}
    for mode in modes:
        group = [c for c in cells if c.mode == mode]
        if not group:
            continue
        medians[mode] = {key: statistics.median(getattr(c, key) for c in group)
                         for key in ("p50_ms", "p99_ms", "rps", "cpu_pct", "ran", "shed",
                                     "dropped")}
        medians[mode]["max_queue"] = max(c.max_queue for c in group)
    base = medians.get("none", {}).get("p99_ms")
    for mode, m in medians.items():
        ratio = f"{m['p99_ms'] / base:.2f}x" if base else "-"
        lines.append(f"{mode:>14} {m['p50_ms']:7.2f} {m['p99_ms']:7.2f} {ratio:>9} "
                     f"{m['rps']:7.0f} {m['cpu_pct']:8.0f} {m['ran']:7.0f} {m['shed']:7.0f} "
                     f"{m['dropped']:9.0f} {m['max_queue']:9.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default="none,inline,thread,process,default")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise SystemExit(f"unknown modes {unknown}; known: {', '.join(MODES)}")
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rows = workloads.load_rows()
    workload = workloads.build(PATH, "v2", rows, True, ())
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="sg-shadow-") as tmp:
        work = Path(tmp)
        running: dict[str, servers.Server] = {}
        try:
            for mode in modes:
                argv_ = (sys.executable, "-m", "gateway", "serve", "--config",
                         str(config_for(mode, work)), "--host", "127.0.0.1", "--port", "{port}")
                # several gateways at once: none takes the fixed gRPC port
                spec = servers.ServerSpec(f"gateway-{mode}", argv_, setups.GATEWAY_HEALTH,
                                          state_env=setups.STATE_ENV,
                                          env={"SHADOWGATE_GRPC_PORT": "off"})
                running[mode] = servers.start(spec, setups.REPO_ROOT, work)
            for server in running.values():
                servers.wait_ready(server, 120)
            rate = args.rate
            if rate is None:
                probe = running.get("none") or next(iter(running.values()))
                full = capacity(probe, workload)
                rate = round(full * args.fraction, -2)
                print(f"champion-only capacity {full:.0f} req/s (wrk c16 3 s); "
                      f"offering {rate:.0f} req/s")
            for round_ in range(args.rounds):
                order = modes if round_ % 2 == 0 else list(reversed(modes))
                for mode in order:
                    cell = measure(mode, running[mode], workload, rate, args)
                    cells.append(cell)
                    print(f"round {round_} {mode:>14}: p50 {cell.p50_ms:.2f} p99 "
                          f"{cell.p99_ms:.2f} ms, {cell.rps:.0f} req/s, cpu {cell.cpu_pct:.0f}%,"
                          f" ran {cell.ran:.0f}/s shed {cell.shed:.0f}/s dropped "
                          f"{cell.dropped:.0f}/s, max queue {cell.max_queue:.0f}",
                          file=sys.stderr, flush=True)
        finally:
            for server in running.values():
                servers.stop(server)
    print(f"\nmedians of {args.rounds} round(s) of {args.duration:g}s at {rate:.0f} req/s; "
          f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(summarise(cells, modes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
