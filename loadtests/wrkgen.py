"""Drive wrk (C, epoll) with a generated Lua script, and parse its ``--latency`` report.

The script pre-formats the workload's whole request cycle in ``init`` so that ``request()``
only hands back a ready string. Percentiles come from wrk's own latency histogram.
"""

from __future__ import annotations

import re
import resource
import subprocess
import tempfile
from pathlib import Path

from loadgen import LoadResult, LoadSpec
from workloads import Workload

WRK_THREADS = 1  # one wrk thread drives >50k req/s; the servers under test are far slower
UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_TIME = r"([\d.]+)(us|ms|s|m|h)"
_SUMMARY = re.compile(r"^\s*(\d+) requests in ", re.M)
_RPS = re.compile(r"^Requests/sec:\s*([\d.]+)", re.M)
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


class WrkError(RuntimeError):
    """wrk failed or printed something this parser does not understand."""


def lua_script(workload: Workload) -> str:
    """Lua that cycles through the workload's requests, same order as the Python generator."""
    bodies = ",\n".join(_long_string(body.decode()) for body in workload.bodies)
    user_header = f'"{workload.user_header}"' if workload.user_header else "nil"
    extra = "".join(f'    headers["{name}"] = {_long_string(value)}\n'
                    for name, value in workload.headers)
    return f"""
local bodies = {{
{bodies}
}}
local path = "{workload.path}"
local user_header = {user_header}
local cycle = {workload.cycle_length()}
local requests = {{}}
local i = 0

function init(args)
  for k = 0, cycle - 1 do
    local headers = {{["Content-Type"] = "application/json"}}
{extra}    if user_header then headers[user_header] = "user-" .. k end
    requests[k + 1] = wrk.format("POST", path, headers, bodies[(k % #bodies) + 1])
  end
end

function request()
  i = i % cycle + 1
  return requests[i]
end
"""


def _long_string(text: str) -> str:
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def command(spec: LoadSpec, script: Path, duration_s: float) -> list[str]:
    return [
        "wrk", f"-t{min(WRK_THREADS, spec.concurrency)}", f"-c{spec.concurrency}",
        f"-d{max(1, round(duration_s))}s", f"--timeout={max(1, round(spec.timeout_s))}s",
        "--latency", "-s", str(script), f"http://{spec.host}:{spec.port}{spec.workload.path}",
    ]


def run(spec: LoadSpec) -> LoadResult:
    """A warm-up run (discarded), then the measured run; CPU is wrk's over both."""
    with tempfile.TemporaryDirectory(prefix="sg-wrk-") as tmp:
        script = Path(tmp) / "workload.lua"
        script.write_text(lua_script(spec.workload))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        if spec.warmup_s > 0:
            _wrk(command(spec, script, spec.warmup_s), spec.warmup_s + spec.timeout_s + 10)
        output = _wrk(command(spec, script, spec.duration_s),
                      spec.duration_s + spec.timeout_s + 10)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return parse(output, cpu)


def _wrk(argv: list[str], timeout_s: float) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise WrkError(f"wrk exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout


def parse(output: str, cpu_s: float = 0.0) -> LoadResult:
    """Read requests, requests/s, p50/p99 and error counts from wrk's text report."""
    summary, rps = _SUMMARY.search(output), _RPS.search(output)
    p50, p99 = _percentile(output, 50), _percentile(output, 99)
    if summary is None or rps is None:
        raise WrkError(f"unexpected wrk output:\n{output}")
    requests, per_second = int(summary.group(1)), float(rps.group(1))
    socket = _SOCKET.search(output)
    non_2xx = _NON2XX.search(output)
    return LoadResult(
        generator="wrk",
        requests=requests,
        elapsed_s=requests / per_second if per_second > 0 else 0.0,
        p50_ms=p50,
        p99_ms=p99,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in socket.groups()) if socket else 0,
        generator_cpu_s=cpu_s,
    )


def _percentile(output: str, q: int) -> float:
    match = re.search(rf"^\s*{q}%\s+{_TIME}\s*$", output, re.M)
    if match is None:
        return float("nan")
    return float(match.group(1)) * UNITS_MS[match.group(2)]
