"""Start a server under test, wait until it is ready, account its CPU, stop it by PID.

Each server runs in its own session with stdout/stderr going to a log file (a pipe could
fill up and stall it); the log's tail explains a server that failed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
POLL_INTERVAL_S = 0.05
STOP_TIMEOUT_S = 10.0
TAIL_LINES = 30
CLK_TCK = os.sysconf("SC_CLK_TCK")


class ServerFailed(RuntimeError):
    """The server exited, or never became ready; ``tail`` is the end of its output."""

    def __init__(self, message: str, tail: str) -> None:
        super().__init__(message)
        self.tail = tail


@dataclass(frozen=True)
class ServerSpec:
    """How to launch one server; ``{port}`` in argv is replaced by a free port."""

    name: str
    argv: tuple[str, ...]
    health_path: str
    state_env: str | None = None  # env var that gets a fresh temp dir per start
    env: dict[str, str] = field(default_factory=dict)
    unavailable: str | None = None  # why it cannot run here (a peer not installed)


@dataclass
class Server:
    """A started server: its process, port and log."""

    spec: ServerSpec
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    state_dir: Path | None
    children: list[tuple[int, int]] = field(default_factory=list)  # (pid, start time)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start(spec: ServerSpec, cwd: Path, log_dir: Path) -> Server:
    port = free_port()
    env = {**os.environ, **spec.env}
    state_dir = None
    if spec.state_env:
        state_dir = Path(tempfile.mkdtemp(prefix=f"sg-bench-{spec.name}-"))
        env[spec.state_env] = str(state_dir)
    argv = [arg.replace("{port}", str(port)) for arg in spec.argv]
    log_path = log_dir / f"{spec.name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    return Server(spec, process, port, log_path, state_dir)


def wait_ready(server: Server, deadline_s: float) -> float:
    """Poll the health route until it answers 2xx; return the seconds it took."""
    url = f"http://{HOST}:{server.port}{server.spec.health_path}"
    started = time.monotonic()
    while True:
        if not server.alive():
            code = server.process.returncode
            raise ServerFailed(f"{server.spec.name} exited with code {code}", server.tail())
        if _healthy(url):
            server.children = _descendants(server.pid)  # to stop them even if it dies first
            return time.monotonic() - started
        if time.monotonic() - started > deadline_s:
            raise ServerFailed(f"{server.spec.name} not ready after {deadline_s:.0f}s at {url}",
                               server.tail())
        time.sleep(POLL_INTERVAL_S)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return bool(200 <= response.status < 300)
    except (urllib.error.URLError, OSError):
        return False


def stop(server: Server) -> None:
    """SIGTERM the server, SIGKILL it after a grace period, then any child it left behind."""
    children = server.children
    if server.alive():
        children = children + _descendants(server.pid)
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    _stop_leftovers(children)
    if server.state_dir is not None:
        shutil.rmtree(server.state_dir, ignore_errors=True)


@contextlib.contextmanager
def running(servers: list[Server]) -> Iterator[list[Server]]:
    """Stop every server on the way out, whatever happened (errors, Ctrl-C)."""
    try:
        yield servers
    finally:
        for server in servers:
            stop(server)


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (field 3 onwards)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def _descendants(root: int) -> list[tuple[int, int]]:
    """(pid, start time) of every live descendant of ``root``."""
    parents: dict[int, list[tuple[int, int]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            parents.setdefault(int(fields[1]), []).append((int(entry), int(fields[19])))
    found: list[tuple[int, int]] = []
    frontier = [root]
    while frontier:
        children = parents.get(frontier.pop(), [])
        found += children
        frontier += [pid for pid, _ in children]
    return found


def _stop_leftovers(children: list[tuple[int, int]]) -> None:
    """SIGTERM, then SIGKILL, the children still running after their parent stopped."""
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid, start_ticks in children:
            _signal_if_same(pid, start_ticks, sig)
        while time.monotonic() < deadline and any(_same(pid, t) for pid, t in children):
            time.sleep(POLL_INTERVAL_S)
        deadline = time.monotonic() + STOP_TIMEOUT_S


def _same(pid: int, start_ticks: int) -> bool:
    """Whether ``pid`` is still the process that started at ``start_ticks`` (not a reuse)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z" and int(fields[19]) == start_ticks


def _signal_if_same(pid: int, start_ticks: int, sig: signal.Signals) -> None:
    if _same(pid, start_ticks):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def cpu_seconds(root: int) -> float:
    """User + system CPU of ``root`` and its live descendants (e.g. an embedded Redis)."""
    total = 0
    for pid in [root] + [pid for pid, _ in _descendants(root)]:
        fields = _stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle (all cores, steal time included)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle, iowait = fields[3], fields[4]
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user]
    return (sum(fields[:8]) - idle - iowait) / CLK_TCK
