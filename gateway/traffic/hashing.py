"""Sticky buckets: a stable hash of the routing key, identical in every process and replica.

Never Python's ``hash()``: it is salted per process.
"""

from __future__ import annotations

from hashlib import blake2b

BUCKETS = 10_000


def key_digest(salt: str, experiment: str, key: str) -> bytes:
    """8-byte blake2b digest of ``salt:experiment:key``."""
    return blake2b(f"{salt}:{experiment}:{key}".encode(), digest_size=8).digest()


def bucket_of(digest: bytes) -> int:
    """Bucket in [0, BUCKETS) from a key digest."""
    return int.from_bytes(digest, "big") % BUCKETS


def bucket(salt: str, experiment: str, key: str) -> int:
    return bucket_of(key_digest(salt, experiment, key))
