"""SIGTERM: readiness turns false first, requests are served while load balancers drain the
replica, then the server stops accepting and closes each connection after its response."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
import pytest
import yaml

from gateway.web.drain import Drain
from tests.helpers import GatewayProcess, apoll, config, v2_body

DEADLINE_S = 30.0


class Signals:
    """A stand-in for the server's own SIGTERM handler (uvicorn's handle_exit)."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def __call__(self, sig: int, frame: FrameType | None) -> None:
        self.received.append(sig)


async def with_handler(drain_s: float, scenario: Any) -> None:
    server = Signals()
    original = signal.signal(signal.SIGTERM, server)
    ready = {"ready": True}
    drain = Drain(drain_s, lambda: ready.update(ready=False), asyncio.get_running_loop())
    try:
        assert drain.install()
        await scenario(server, ready)
        drain.uninstall()
        assert signal.getsignal(signal.SIGTERM) is server
    finally:
        signal.signal(signal.SIGTERM, original)


async def test_readiness_turns_false_and_a_second_signal_stops_at_once() -> None:
    async def scenario(server: Signals, ready: dict[str, bool]) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        await apoll(lambda: not ready["ready"], DEADLINE_S, "unready")
        assert server.received == []  # draining: the server has not been told to stop
        os.kill(os.getpid(), signal.SIGTERM)
        await apoll(lambda: server.received == [signal.SIGTERM], DEADLINE_S, "stop")

    await with_handler(3600, scenario)


@pytest.mark.parametrize("drain_s", [0.0, 0.05])
async def test_the_server_stops_after_the_drain(drain_s: float) -> None:
    async def scenario(server: Signals, ready: dict[str, bool]) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        await apoll(lambda: server.received == [signal.SIGTERM], DEADLINE_S, "stop")
        assert not ready["ready"]

    await with_handler(drain_s, scenario)


async def test_only_the_main_thread_can_drain() -> None:
    drain = Drain(1, lambda: None, asyncio.get_running_loop())
    assert not await asyncio.to_thread(drain.install)


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    request: bytes) -> tuple[int, dict[str, str], bytes]:
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE_S)
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in
               (line.split(":", 1) for line in lines[1:] if ":" in line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers, body


def _post(path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


READY = b"GET /v2/health/ready HTTP/1.1\r\nhost: x\r\n\r\n"


@pytest.mark.slow
def test_sigterm_drains_a_real_gateway(tmp_path: Path, holdout: list[dict[str, Any]]) -> None:
    body = orjson.dumps(v2_body([holdout[0]["features"]]))

    async def scenario() -> None:
        arrived: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

        async def on_model_call(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await arrived.put(w)

        gate = await asyncio.start_server(on_model_call, "127.0.0.1", 0)
        port = gate.sockets[0].getsockname()[1]
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml.safe_dump(config(models=[
            {"name": "bc-logreg"},
            {"name": "gate", "python": "tests.backends:socket_gated",
             "options": {"port": port}}])))
        env = {"SHADOWGATE_LOG": "off", "SHADOWGATE_DRAIN_S": "3600",
               "SHADOWGATE_STATE_DIR": str(tmp_path / "state")}
        with GatewayProcess(path, env) as gw:
            assert gw.proc is not None
            # A: a request in flight (the model holds it); B: an idle keep-alive connection
            a = await asyncio.open_connection("127.0.0.1", gw.port)
            a[1].write(_post("/v2/models/gate/infer", body))
            held = await asyncio.wait_for(arrived.get(), DEADLINE_S)
            b = await asyncio.open_connection("127.0.0.1", gw.port)
            assert (await _exchange(*b, READY))[0] == 200

            gw.proc.send_signal(signal.SIGTERM)

            async def unready() -> bool:
                r, w = await asyncio.open_connection("127.0.0.1", gw.port)
                try:
                    return (await _exchange(r, w, READY))[0] == 503
                finally:
                    w.close()

            await apoll(unready, DEADLINE_S, "readiness to turn false", every=0.05)
            # Still serving while load balancers drain: on B and on a new connection.
            assert (await _exchange(*b, _post("/v2/models/bc-logreg/infer", body)))[0] == 200
            c = await asyncio.open_connection("127.0.0.1", gw.port)
            assert (await _exchange(*c, _post("/v2/models/bc-logreg/infer", body)))[0] == 200
            c[1].close()

            gw.proc.send_signal(signal.SIGTERM)  # the drain is over: stop now
            # The idle keep-alive connection is closed; no new connection is accepted.
            assert await asyncio.wait_for(b[0].read(), DEADLINE_S) == b""

            async def refused() -> bool:
                try:
                    _, w = await asyncio.open_connection("127.0.0.1", gw.port)
                except OSError:
                    return True
                w.close()
                return False

            await apoll(refused, DEADLINE_S, "the listener to close", every=0.05)
            # The busy connection gets its answer, then is closed.
            held.write(b"x")
            status, headers, answer = await asyncio.wait_for(
                _exchange(a[0], a[1], b""), DEADLINE_S)
            assert status == 200 and headers["connection"] == "close"
            assert orjson.loads(answer)["model_name"] == "gate"
            assert await asyncio.wait_for(a[0].read(), DEADLINE_S) == b""
            output = gw.stop()
            assert gw.proc.returncode is not None
            assert "not ready any more" in output
            for writer in (a[1], b[1], held):
                writer.close()
        gate.close()
        await gate.wait_closed()

    asyncio.run(scenario())
