from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from gateway.predlog.embedded import EmbeddedRedis


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def test_start_writes_pidfile_and_data_survive_a_restart(state_dir: Path) -> None:
    server = EmbeddedRedis(state_dir)
    server.start()
    try:
        pid = int(server.pidfile.read_text())
        assert alive(pid)
        assert server.url == f"unix://{state_dir.resolve()}/redis.sock"
        with redis.Redis.from_url(server.url) as client:
            client.xadd("sg:{d}:pairs", {"r": b"kept"})
    finally:
        server.stop()
    assert not alive(pid)

    again = EmbeddedRedis(state_dir)
    again.start()
    try:
        with redis.Redis.from_url(again.url) as client:
            assert [f[b"r"] for _, f in client.xrange("sg:{d}:pairs")] == [b"kept"]
    finally:
        again.stop()


def test_a_server_left_running_is_adopted_not_doubled(state_dir: Path) -> None:
    # A gateway process that started its Redis and died without stopping it.
    code = ("import sys\nfrom gateway.predlog.embedded import EmbeddedRedis\n"
            "EmbeddedRedis(sys.argv[1]).start()")
    subprocess.run([sys.executable, "-c", code, str(state_dir)], check=True, timeout=30,
                   cwd=Path(__file__).parents[2])
    orphan = int((state_dir / "redis.pid").read_text())
    server = EmbeddedRedis(state_dir)
    try:
        server.start()
        with redis.Redis.from_url(server.url) as client:
            assert client.info("server")["process_id"] == orphan
        server.stop()
        assert not _answers(server.url)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(orphan, signal.SIGKILL)


def _answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=0.5) as client:
            return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_too_long_state_dir_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="too long for a unix socket"):
        EmbeddedRedis(tmp_path / ("x" * 120))


def test_it_runs_niced_and_rewrites_its_aof_rarely(state_dir: Path) -> None:
    server = EmbeddedRedis(state_dir, nice=5, extra_args=["--auto-aof-rewrite-min-size", "1gb"])
    server.start()
    try:
        pid = int(server.pidfile.read_text())
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, os.getpriority(
            os.PRIO_PROCESS, 0) + 5)
        with redis.Redis.from_url(server.url) as client:
            config = {k: client.config_get(k)[k] for k in (
                "auto-aof-rewrite-percentage", "auto-aof-rewrite-min-size",
                "aof-use-rdb-preamble", "no-appendfsync-on-rewrite", "appendfsync")}
    finally:
        server.stop()
    assert config == {"auto-aof-rewrite-percentage": "200",
                      "auto-aof-rewrite-min-size": str(1 << 30),  # the extra argument wins
                      "aof-use-rdb-preamble": "yes", "no-appendfsync-on-rewrite": "yes",
                      "appendfsync": "everysec"}
