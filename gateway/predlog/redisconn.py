"""The Redis side of the prediction log: the client the writer needs and the commands it sends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.predlog import keys
from gateway.predlog.record import STREAM_FIELD

Window = tuple[int, int]  # [lo, hi] in Redis server milliseconds, i.e. stream-id time


@dataclass(frozen=True)
class Retention:
    """How much of a deployment's stream Redis keeps: the newest max_len and/or max_age_s."""

    max_len: int | None = 1_000_000
    max_age_s: float | None = None


DEFAULT_RETENTION = Retention()


@dataclass(frozen=True, slots=True)
class Frame:
    """One encoded record with the two fields that routing and deduplication need."""

    deployment: str
    request_id: str
    payload: bytes


def client(url: str, *, timeout: float = 2.0) -> Redis:
    """A client fit for the writer (from ``redis://``, ``rediss://`` or ``unix://`` URLs).

    redis-py retries failed commands by default; a retried MULTI/EXEC whose first reply was
    lost would write its batch twice, so this client never retries (the writer spools instead).
    """
    return Redis.from_url(
        url,
        retry=Retry(NoBackoff(), 0),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )


def _trim_commands(retention: Retention, now_ms: int) -> list[dict[str, int | str]]:
    trims: list[dict[str, int | str]] = []
    if retention.max_len is not None:
        trims.append({"maxlen": retention.max_len})
    if retention.max_age_s is not None:
        trims.append({"minid": f"{max(0, now_ms - int(retention.max_age_s * 1000))}-0"})
    return trims


async def write_batch(
    redis: Redis,
    frames: Sequence[Frame],
    retention: Callable[[str], Retention],
    now_ms: int,
) -> list[tuple[Frame, Exception]]:
    """XADD every frame in one MULTI/EXEC, then trim each touched stream once.

    Raises on a transport failure or an aborted transaction (then nothing was applied, or, when
    the reply was lost, maybe everything). Returns the frames Redis refused one by one inside an
    executed transaction (e.g. WRONGTYPE: Redis does not roll back the others).
    """
    pipe = redis.pipeline(transaction=True)
    deployments: dict[str, None] = {}
    for frame in frames:
        pipe.xadd(keys.pairs(frame.deployment), {STREAM_FIELD: frame.payload})
        deployments[frame.deployment] = None
    # One approximate trim per stream and batch does the work of a trim on every XADD.
    for deployment in deployments:
        for trim in _trim_commands(retention(deployment), now_ms):
            pipe.xtrim(keys.pairs(deployment), approximate=True, **trim)  # type: ignore[arg-type]
    results = await pipe.execute(raise_on_error=False)
    return [(f, r) for f, r in zip(frames, results, strict=False) if isinstance(r, Exception)]


async def server_time_ms(redis: Redis) -> float:
    """Redis's own clock, which stamps stream ids."""
    seconds, micros = await redis.time()
    return seconds * 1000.0 + micros / 1000.0


def parse_frames(payloads: Sequence[bytes]) -> tuple[list[Frame], int]:
    """Frames back from spooled payloads, and how many were unreadable."""
    frames = []
    for payload in payloads:
        try:
            data = orjson.loads(payload)
            frames.append(Frame(data["deployment"], data["request_id"], payload))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            pass
    return frames, len(payloads) - len(frames)


async def already_written(
    redis: Redis, frames: Sequence[Frame], windows: Sequence[Window]
) -> set[str]:
    """Request ids of ``frames`` that their deployment's stream holds within any of ``windows``."""
    by_deployment: dict[str, set[str]] = {}
    for frame in frames:
        by_deployment.setdefault(frame.deployment, set()).add(frame.request_id)
    present: set[str] = set()
    for deployment, ids in by_deployment.items():
        for window in windows:
            present |= await find_written(redis, deployment, ids, window)
    return present


async def find_written(
    redis: Redis, deployment: str, request_ids: set[str], window: Window, page: int = 1000
) -> set[str]:
    """Which of ``request_ids`` already have an entry in the stream within ``window``."""
    found: set[str] = set()
    start: str = f"{window[0]}"
    key = keys.pairs(deployment)
    while True:
        entries = await redis.xrange(key, min=start, max=f"{window[1]}", count=page) or []
        for _, fields in entries:
            try:
                request_id = orjson.loads((fields or {})[STREAM_FIELD])["request_id"]
            except (KeyError, TypeError, orjson.JSONDecodeError):
                continue  # not ours to judge: the reader skips garbage too
            if request_id in request_ids:
                found.add(request_id)
        if len(entries) < page:
            return found
        last_id = entries[-1][0]
        start = "(" + (last_id.decode() if isinstance(last_id, bytes) else str(last_id))
