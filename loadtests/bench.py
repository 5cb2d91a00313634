"""Benchmark the gateway against the floor, side by side in one run.

    python loadtests/bench.py [--duration 5] [--concurrency 1,16,64]
                              [--setups floor,v2,predict,full-v2,full-predict]
    python loadtests/bench.py --rate 2000,4000,6000 [--connections 64]   # open loop

Every server needed is started once (free port, readiness polled with a deadline) and
stopped by PID at the end. For each concurrency the setups run back to back, ``--rounds``
times in alternating order, so that background noise hits them alike; the table compares
each setup with the floor at the same concurrency. Results also go to
``loadtests/results/bench-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import get_args

import loadgen
import paced
import pygen
import report
import servers
import setups
import workloads
import wrkgen
from loadgen import GeneratorChoice, GeneratorName, LoadResult, LoadSpec
from report import Cell, Pick
from servers import Server, ServerFailed
from setups import Setup

RESULTS_DIR = setups.LOADTESTS / "results"
RUNNERS: dict[GeneratorName, Callable[[LoadSpec], LoadResult]] = {
    "wrk": wrkgen.run,
    "python": pygen.run,
}


Load = tuple[int, float]  # (connections, offered requests/s; 0.0: closed loop)


@dataclass(frozen=True)
class Failure:
    """Why a setup stopped being measured, with the end of its server's output."""

    message: str
    tail: str = ""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per cell")
    parser.add_argument("--concurrency", type=_ints, default=[1, 16, 64],
                        help="comma-separated connection counts")
    parser.add_argument("--setups", type=_names, default=list(setups.DEFAULT_SETUPS),
                        help=f"comma-separated, of: {', '.join(s.name for s in setups.SETUPS)}")
    parser.add_argument("--rounds", type=_positive, default=2,
                        help="runs per cell, alternating order")
    parser.add_argument("--pick", choices=get_args(Pick), default="best",
                        help="how rounds are combined in the table")
    parser.add_argument("--generator", choices=get_args(GeneratorChoice), default="auto")
    parser.add_argument("--ready-timeout", type=float, default=60.0,
                        help="seconds a server may take to become ready")
    parser.add_argument("--rows", type=_positive, default=workloads.DEFAULT_ROWS,
                        help="distinct sample rows cycled through")
    parser.add_argument("--rate", type=_ints, default=None,
                        help="open loop instead: offer these requests/s (comma-separated) to "
                             "every setup, over --connections connections (paced.py)")
    parser.add_argument("--connections", type=_positive, default=64,
                        help="connection pool of the open-loop generator")
    return parser.parse_args(argv)


def _ints(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected positive integers, e.g. 1,16,64")
    return values


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def start_servers(stack: contextlib.ExitStack, chosen: Sequence[Setup], log_dir: Path,
                  ready_timeout: float, failures: dict[str, Failure]) -> dict[str, Server]:
    """Start every server the setups need (all at once), then wait for each to be ready."""
    started: dict[str, Server] = {}
    for name in dict.fromkeys(setup.server for setup in chosen):
        spec = setups.server_spec(name)
        if spec.unavailable is not None:
            failures.update({s.name: Failure(f"skipped: {spec.unavailable}") for s in chosen
                             if s.server == name})
            _progress(f"{name}: skipped: {spec.unavailable}")
            continue
        server = servers.start(spec, setups.REPO_ROOT, log_dir)
        stack.callback(servers.stop, server)
        started[name] = server
    ready: dict[str, Server] = {}
    for name, server in started.items():
        try:
            seconds = servers.wait_ready(server, ready_timeout)
        except ServerFailed as exc:
            failures.update({s.name: Failure(str(exc), exc.tail) for s in chosen
                             if s.server == name})
            servers.stop(server)
            continue
        ready[name] = server
        _progress(f"{name} ready on port {server.port} (pid {server.pid}) in {seconds:.1f}s")
    return ready


def smoke(server: Server, workload: workloads.Workload) -> Failure | None:
    """One request before measuring: a setup whose route does not answer 2xx is skipped."""
    headers, body = next(workload.requests())
    url = f"http://{servers.HOST}:{server.port}{workload.path}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode(errors="replace")
        return Failure(f"POST {workload.path} answered {exc.code}: {detail}", server.tail())
    except OSError as exc:
        return Failure(f"POST {workload.path} failed: {exc}", server.tail())
    return None


def measure(setup: Setup, server: Server, workload: workloads.Workload, load: Load,
            round_: int, args: argparse.Namespace, generator: GeneratorName) -> Cell:
    """One cell, with the CPU of the generator, of the server and of everything else."""
    concurrency, rate = load
    spec = LoadSpec(servers.HOST, server.port, workload, concurrency, args.duration, args.warmup,
                    rate=rate)
    dropped_before = dropped(server)
    server_before, machine_before = servers.cpu_seconds(server.pid), servers.machine_busy_seconds()
    started = time.monotonic()
    result = paced.run(spec) if rate else RUNNERS[generator](spec)
    wall = time.monotonic() - started
    server_cpu = servers.cpu_seconds(server.pid) - server_before
    machine_cpu = servers.machine_busy_seconds() - machine_before
    background = max(0.0, machine_cpu - server_cpu - result.generator_cpu_s)
    # CPU per request: the server's CPU over the cell (warm-up included) over the requests
    # the cell would have served at its measured rate (open loop: the offered rate).
    served = result.rps * wall
    cpu_us = 1e6 * server_cpu / served if served > 0 else float("nan")
    return Cell(
        setup=setup.name, concurrency=concurrency, round=round_,
        generator="python-paced" if rate else generator, rate=rate,
        requests=result.requests, rps=result.rps, p50_ms=result.p50_ms, p99_ms=result.p99_ms,
        non_2xx=result.non_2xx, socket_errors=result.socket_errors,
        generator_cpu_pct=100 * result.generator_cpu_s / wall,
        server_cpu_pct=100 * server_cpu / wall, background_cpu_pct=100 * background / wall,
        dropped=int(dropped(server) - dropped_before), cpu_us_per_request=cpu_us,
    )


_DROPPED = re.compile(r"^shadowgate_(?:shadow_dropped|predlog_records_dropped)_total\{[^}]*\} "
                      r"([0-9.e+]+)$", re.M)


def dropped(server: Server) -> float:
    """Shadow jobs and log records a gateway dropped so far (0 for the floor: no /metrics).

    A full setup that keeps its req/s by dropping shadow work would not be the setup the
    table claims to measure, so every cell reports this count."""
    try:
        with urllib.request.urlopen(f"http://{servers.HOST}:{server.port}/metrics",
                                    timeout=5) as reply:
            text = reply.read().decode()
    except (urllib.error.URLError, OSError):
        return 0.0
    return sum(float(v) for v in _DROPPED.findall(text))


def run_matrix(chosen: Sequence[Setup], running: dict[str, Server], cells: list[Cell],
               failures: dict[str, Failure], args: argparse.Namespace,
               generator: GeneratorName) -> None:
    """Concurrency by concurrency; within each, the setups back to back, alternating order.

    Appends to ``cells`` as it goes, so that an interrupted run still reports what it has.
    """
    rows = workloads.load_rows(rows=args.rows)
    loads = {s.name: workloads.build(s.path, s.body, rows, s.vary_users, s.headers)
             for s in chosen}
    for setup in chosen:
        failure = None if setup.name in failures else smoke(running[setup.server],
                                                             loads[setup.name])
        if failure is not None:
            failures[setup.name] = failure
    plan: list[Load] = ([(args.connections, float(r)) for r in args.rate] if args.rate
                        else [(c, 0.0) for c in args.concurrency])
    for load in plan:
        for round_ in range(args.rounds):
            order = chosen if round_ % 2 == 0 else list(reversed(chosen))
            for setup in order:
                if setup.name in failures:
                    continue
                cell = _cell(setup, running, loads[setup.name], load, round_, args,
                             generator, failures)
                if cell is not None:
                    cells.append(cell)


def _cell(setup: Setup, running: dict[str, Server], workload: workloads.Workload,
          load: Load, round_: int, args: argparse.Namespace, generator: GeneratorName,
          failures: dict[str, Failure]) -> Cell | None:
    server = running[setup.server]
    if not server.alive():
        failures[setup.name] = _died(server)
        return None
    try:
        cell = measure(setup, server, workload, load, round_, args, generator)
    except (wrkgen.WrkError, subprocess.TimeoutExpired, OSError) as exc:
        failures[setup.name] = Failure(f"load generator failed: {exc}", server.tail())
        return None
    if not server.alive():
        failures[setup.name] = _died(server)
        return None
    where = f"@{load[1]:.0f}/s" if load[1] else f"c={load[0]}"
    _progress(f"{where:<8} round {round_}  {setup.name:<13} {cell.rps:8.0f} req/s  "
              f"p50 {cell.p50_ms:6.2f} ms  p99 {cell.p99_ms:6.2f} ms  errors {cell.errors}  "
              f"dropped {cell.dropped}  "
              f"cpu% gen {cell.generator_cpu_pct:.0f} srv {cell.server_cpu_pct:.0f} "
              f"bg {cell.background_cpu_pct:.0f}")
    return cell


def _died(server: Server) -> Failure:
    code = server.process.returncode
    return Failure(f"{server.spec.name} died (exit {code})", server.tail())


def machine_info(generator: GeneratorName) -> dict[str, object]:
    info: dict[str, object] = {
        "cpus": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version(), "loadavg_start": os.getloadavg(),
        "generator": generator,
    }
    git = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=setups.REPO_ROOT,
                         capture_output=True, text=True, check=False)
    info["commit"] = git.stdout.strip() or None
    if generator == "wrk":
        done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        banner = (done.stdout or done.stderr).splitlines()[0]
        info["generator_version"] = banner.split(" Copyright")[0].strip()
    return info


def write_json(path: Path, info: dict[str, object], args: argparse.Namespace,
               cells: list[Cell], rows: list[report.Row], failures: dict[str, Failure]) -> None:
    payload = {
        "machine": info, "args": vars(args), "targets": report.TARGETS,
        "summary": [asdict(row) for row in rows], "cells": [asdict(cell) for cell in cells],
        "failed": {name: asdict(failure) for name, failure in failures.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _print_failures(failures: dict[str, Failure]) -> None:
    shown: set[str] = set()
    for name, failure in failures.items():
        if failure.tail and failure.tail not in shown:
            shown.add(failure.tail)
            print(f"\n--- {name}: {failure.message}\n--- server output (tail):\n{failure.tail}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = [setups.find(name) for name in args.setups]
    generator = loadgen.choose(args.generator)
    signal.signal(signal.SIGTERM, _interrupt)
    info = machine_info(generator)
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"load average at start: {load} ({os.cpu_count()} cpus); "
          f"load generator: {info.get('generator_version', generator)}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    cells: list[Cell] = []
    failures: dict[str, Failure] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="sg-bench-") as tmp, \
                contextlib.ExitStack() as stack:
            running = start_servers(stack, chosen, Path(tmp), args.ready_timeout, failures)
            run_matrix(chosen, running, cells, failures, args, generator)
    except KeyboardInterrupt:
        info["interrupted"] = True
        print("\ninterrupted: servers stopped; partial results follow", file=sys.stderr)
    info["loadavg_end"] = os.getloadavg()
    finish(RESULTS_DIR / f"bench-{stamp}.json", info, args, cells, failures)
    if info.get("interrupted"):
        return 130
    return 1 if failures else 0


def finish(out: Path, info: dict[str, object], args: argparse.Namespace, cells: list[Cell],
           failures: dict[str, Failure]) -> None:
    """Print the table and the failures, and write the JSON results."""
    rows = report.summarise(cells, args.pick, setups.BASELINE)
    same = "offered rate (open loop)" if args.rate else "concurrency"
    print(f"\n{args.pick} of {args.rounds} round(s), {args.duration:g}s each after "
          f"{args.warmup:g}s warm-up; ratios against {setups.BASELINE} at the same {same}")
    print(report.table(rows, {n: f.message for n, f in failures.items()}, args.setups))
    against_peers = report.peer_table(rows, args.setups, setups.PEERS)
    if against_peers:
        print(f"\ngateway setups against the peers, requests/s ratio (same {same}):")
        print(against_peers)
    _print_failures(failures)
    write_json(out, info, args, cells, rows, failures)
    print(f"\nresults: {out}")


if __name__ == "__main__":
    sys.exit(main())
