"""Request ids: the caller's when it is sane, else 128 unguessable bits (HTTP and gRPC)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

_SANE_ID = re.compile(rb"[\x21-\x7e]{1,128}")


def acceptable(value: bytes) -> bool:
    """1-128 visible ASCII characters (one C-level match, not a Python loop per byte)."""
    return _SANE_ID.fullmatch(value) is not None


class _RandomHex:
    """Hex digits from the OS's CSPRNG, read a block at a time: one ``getrandom`` call per
    256 ids instead of one per request (a syscall costs more than a tiny model's call)."""

    __slots__ = ("hex", "pos")
    BLOCK_IDS = 256

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget what is left: a forked child must not issue its parent's ids."""
        self.hex = b""
        self.pos = 0


_POOL = _RandomHex()
os.register_at_fork(after_in_child=_POOL.reset)


def new_request_id(pool: _RandomHex = _POOL, urandom: Callable[[int], bytes] = os.urandom
                   ) -> bytes:
    """32 hex digits: 128 bits from ``os.urandom``, so that nobody who has seen earlier ids
    can guess the next one (ids are what feedback is posted against)."""
    pos = pool.pos
    if pos >= len(pool.hex):
        pool.hex = urandom(16 * pool.BLOCK_IDS).hex().encode()
        pos = 0
    pool.pos = pos + 32
    return pool.hex[pos:pos + 32]


def request_id(value: bytes | None) -> str:
    """The caller's id if sane, else a new one."""
    if value is not None and acceptable(value):
        return value.decode()
    return new_request_id().decode()
