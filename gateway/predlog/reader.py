"""Scanning a deployment's stream of paired records in pages, joined with late labels.

Memory is bounded by one page of records plus the set of request ids already yielded (replays
after a crash can repeat a record; the first copy wins): about 100 bytes per request, so 100 MB
for a million-request window. Two requests that share a client-chosen request id count as one.

Records are filtered by their own ``ts``, not by stream id. A record is written after its
request arrived, so its stream id (Redis's clock at XADD) is never older than its ``ts`` minus
the clock skew between gateway and Redis. A spool replay only makes the id newer still, so the
scan may start at ``since - skew_s`` without missing a record, but it must run to the end of the
stream whatever ``until`` is: a replay can land arbitrarily late. ``skew_s=None`` scans from the
first entry (for clocks that may be off by more than an hour).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from gateway.predlog import keys
from gateway.predlog.feedback import StoredLabel, get_feedback
from gateway.predlog.record import STREAM_FIELD, PairedRecord, decode

log = logging.getLogger(__name__)

DEFAULT_PAGE = 1000
DEFAULT_SKEW_S = 3600.0

Joined = tuple[PairedRecord, StoredLabel | None]


@dataclass
class ScanStats:
    """Counters of one scan, complete once the iteration has ended."""

    entries: int = 0  # stream entries read
    pages: int = 0  # XRANGE calls
    undecodable: int = 0  # entries skipped as not a paired record
    duplicates: int = 0  # repeated request ids (spool replays), skipped
    records: int = 0  # records yielded
    labelled: int = 0  # records yielded with a label (iter_joined only)
    last_id: str | None = None  # the last stream id read (iter_raw_pages), to resume after it


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _record(fields: Mapping[bytes | str, bytes | str] | None) -> PairedRecord | None:
    if not fields:
        return None
    raw = fields.get(STREAM_FIELD, fields.get(STREAM_FIELD.decode()))
    if raw is None:
        return None
    try:
        record = decode(raw)
    except ValueError:  # orjson.JSONDecodeError is a ValueError
        return None
    ts = record.get("ts")
    if (not isinstance(record.get("request_id"), str) or isinstance(ts, bool)
            or not isinstance(ts, int | float)):
        return None  # without these two the record can be neither filtered nor joined
    return record


async def iter_pages(
    redis: Redis,
    deployment: str,
    *,
    since: float | None,
    until: float | None,
    page: int = DEFAULT_PAGE,
    skew_s: float | None = DEFAULT_SKEW_S,
    stats: ScanStats | None = None,
) -> AsyncIterator[list[PairedRecord]]:
    """Records with ``since <= ts < until``, one list per XRANGE page (possibly empty)."""
    if page < 1:
        raise ValueError("page must be at least 1")
    stats = ScanStats() if stats is None else stats
    key = keys.pairs(deployment)
    start = "-"
    if since is not None and skew_s is not None:
        start = f"{max(0, int((since - skew_s) * 1000))}-0"
    seen: set[str] = set()
    while True:
        entries = await redis.xrange(key, min=start, max="+", count=page) or []
        stats.pages += 1
        stats.entries += len(entries)
        batch: list[PairedRecord] = []
        for _, fields in entries:
            record = _record(fields)
            if record is None:
                stats.undecodable += 1
                continue
            ts = record["ts"]
            if (since is not None and ts < since) or (until is not None and ts >= until):
                continue
            if record["request_id"] in seen:
                stats.duplicates += 1
                continue
            seen.add(record["request_id"])
            batch.append(record)
        stats.records += len(batch)
        yield batch
        if len(entries) < page:
            break
        # Exclusive start after the last id ("(" needs Redis >= 6.2, as the writer does).
        last_id = entries[-1][0]
        if last_id is None:  # no Redis we know sends this; never loop or cut the scan short
            raise RuntimeError(f"XRANGE on {key} returned an entry without an id")
        start = "(" + _text(last_id)
    if stats.undecodable:
        log.warning("predlog %s: skipped %d undecodable stream entries", deployment,
                    stats.undecodable)


async def iter_raw_pages(
    redis: Redis,
    deployment: str,
    *,
    since: float | None,
    page: int = DEFAULT_PAGE,
    skew_s: float | None = DEFAULT_SKEW_S,
    stats: ScanStats | None = None,
    after: str | None = None,
    end: str = "+",
) -> AsyncIterator[list[bytes]]:
    """The encoded records of the stream from ``since - skew_s`` (or after the stream id
    ``after``) to ``end``, one list per XRANGE page, undecoded: for readers with their own
    decoder (the reports), which then filter by ``ts`` and count each request id once as
    :func:`iter_pages` does. ``stats.last_id`` is where to resume."""
    if page < 1:
        raise ValueError("page must be at least 1")
    stats = ScanStats() if stats is None else stats
    key = keys.pairs(deployment)
    start = "-"
    if after is not None:
        start = "(" + after
    elif since is not None and skew_s is not None:
        start = f"{max(0, int((since - skew_s) * 1000))}-0"
    while True:
        entries = await redis.xrange(key, min=start, max=end, count=page) or []
        stats.pages += 1
        stats.entries += len(entries)
        payloads = []
        for _, fields in entries:
            raw = (fields or {}).get(STREAM_FIELD)
            if isinstance(raw, bytes):
                payloads.append(raw)
            else:
                stats.undecodable += 1
        if entries:
            last_id = entries[-1][0]
            if last_id is None:
                raise RuntimeError(f"XRANGE on {key} returned an entry without an id")
            stats.last_id = _text(last_id)
        yield payloads
        if len(entries) < page:
            return
        start = "(" + str(stats.last_id)


async def iter_records(
    redis: Redis,
    deployment: str,
    *,
    since: float | None,
    until: float | None,
    page: int = DEFAULT_PAGE,
    skew_s: float | None = DEFAULT_SKEW_S,
    stats: ScanStats | None = None,
) -> AsyncIterator[PairedRecord]:
    """Each request's record once, in stream order, with ``since <= ts < until`` (None: open).

    ``page`` bounds the entries read per XRANGE; ``stats`` (optional) receives the counters.
    """
    async for batch in iter_pages(redis, deployment, since=since, until=until, page=page,
                                  skew_s=skew_s, stats=stats):
        for record in batch:
            yield record


async def iter_joined_pages(
    redis: Redis,
    deployment: str,
    *,
    since: float | None,
    until: float | None,
    page: int = DEFAULT_PAGE,
    skew_s: float | None = DEFAULT_SKEW_S,
    stats: ScanStats | None = None,
) -> AsyncIterator[list[Joined]]:
    """Like :func:`iter_pages`, each record paired with its stored label (one HMGET per page)."""
    stats = ScanStats() if stats is None else stats
    async for batch in iter_pages(redis, deployment, since=since, until=until, page=page,
                                  skew_s=skew_s, stats=stats):
        labels = await get_feedback(redis, deployment, (r["request_id"] for r in batch))
        stats.labelled += len(labels)
        yield [(record, labels.get(record["request_id"])) for record in batch]


async def iter_joined(
    redis: Redis,
    deployment: str,
    *,
    since: float | None,
    until: float | None,
    page: int = DEFAULT_PAGE,
    skew_s: float | None = DEFAULT_SKEW_S,
    stats: ScanStats | None = None,
) -> AsyncIterator[Joined]:
    """``(record, {"label", "ts", "received"} or None)`` for each record of the window.

    The label is read when the record's page is, so a label posted later shows up in the next
    scan; records and labels need no ordering between them.
    """
    async for batch in iter_joined_pages(redis, deployment, since=since, until=until, page=page,
                                         skew_s=skew_s, stats=stats):
        for joined in batch:
            yield joined
