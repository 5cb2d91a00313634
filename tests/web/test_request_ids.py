"""Generated request ids cannot be predicted from earlier ones.

Python's ``random`` is a Mersenne Twister: 624 of its 32-bit outputs (156 ids of 128 bits)
give away its whole state, and with it every later id. The predictor below does exactly
that; it guesses ids made with ``random.getrandbits`` (so the test can fail), and must guess
none of those a real gateway issues.
"""

from __future__ import annotations

import asyncio
import os
import random
import re

import pytest

from gateway.web.middleware import new_request_id
from tests.helpers import LiveServer, config, harness

MASK = 0xFFFFFFFF
IDS = 10_000
STATE_WORDS = 624
WINDOW = STATE_WORDS // 4  # ids that carry a whole state


def _undo_right(y: int, shift: int) -> int:
    x = y
    for _ in range(32 // shift + 1):
        x = y ^ (x >> shift)
    return x & MASK


def _undo_left(y: int, shift: int, mask: int) -> int:
    x = y
    for _ in range(32 // shift + 1):
        x = y ^ ((x << shift) & mask)
    return x & MASK


def untemper(y: int) -> int:
    """MT19937's output tempering, inverted: the state word behind one output."""
    y = _undo_right(y, 18)
    y = _undo_left(y, 15, 0xEFC60000)
    y = _undo_left(y, 7, 0x9D2C5680)
    return _undo_right(y, 11)


def words(request_id: str) -> list[int]:
    """getrandbits(128) draws four 32-bit outputs, least significant first."""
    n = int(request_id, 16)
    return [(n >> (32 * i)) & MASK for i in range(4)]


def guessed(ids: list[str], start: int, ahead: int = 100) -> int:
    """How many of the ``ahead`` ids after ``ids[start:start + 156]`` a Mersenne Twister
    rebuilt from those 156 guesses exactly."""
    outputs = [w for rid in ids[start:start + WINDOW] for w in words(rid)]
    twister = random.Random()
    twister.setstate((3, (*(untemper(o) for o in outputs), STATE_WORDS), None))
    following = ids[start + WINDOW:start + WINDOW + ahead]
    return sum(f"{twister.getrandbits(128):032x}" == rid for rid in following)


def test_the_predictor_breaks_random() -> None:
    """The control: ids as the gateway made them before are predicted, every one."""
    rng = random.Random(2026)
    ids = [f"{rng.getrandbits(128):032x}" for _ in range(1000)]
    assert guessed(ids, 0) == 100
    assert guessed(ids, 500) == 100


async def _issued(port: int, count: int, connections: int = 4) -> list[str]:
    """``count`` ids from GET /v2/health/live over keep-alive connections, in issue order
    per connection."""
    found: list[list[str]] = [[] for _ in range(connections)]

    async def worker(c: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(count // connections):
                writer.write(b"GET /v2/health/live HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
                head = await reader.readuntil(b"\r\n\r\n")
                match = re.search(rb"x-request-id: ([0-9a-f]{32})\r\n", head)
                assert match is not None, head
                found[c].append(match.group(1).decode())
                length = int(re.search(rb"content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
                await reader.readexactly(length)
        finally:
            writer.close()

    await asyncio.gather(*(worker(c) for c in range(connections)))
    return [rid for c in range(connections) for rid in found[c]]


@pytest.mark.slow
def test_ids_a_real_gateway_issues_cannot_be_predicted() -> None:
    with harness(config()) as h, LiveServer(h.app) as live:
        issued = asyncio.run(_issued(live.port, IDS, connections=1))
    assert len(issued) == len(set(issued)) == IDS
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in issued)
    for start in range(0, IDS - WINDOW - 100, 500):
        assert guessed(issued, start) == 0, start
    # Not even one bit better than chance: each hex digit position is near uniform.
    ones = sum(bin(int(rid, 16)).count("1") for rid in issued)
    assert abs(ones / (128 * IDS) - 0.5) < 0.01


def test_a_forked_child_never_issues_its_parents_ids() -> None:
    new_request_id()  # the parent has a block of random bytes in hand
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next id and leave at once
        try:
            os.write(write, new_request_id())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 64)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 32 and child != new_request_id()
