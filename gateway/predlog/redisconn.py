"""The Redis side of the prediction log: the client the writer needs and the commands it sends."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ExecAbortError, NoScriptError, RedisError, ResponseError

from gateway.predlog import keys
from gateway.predlog.record import STREAM_FIELD, index_keys, keys_of

Window = tuple[int, int]  # [lo, hi] in Redis server milliseconds, i.e. stream-id time


@dataclass(frozen=True)
class Retention:
    """How much of a deployment's stream Redis keeps: the newest max_len and/or max_age_s."""

    max_len: int | None = 1_000_000
    max_age_s: float | None = None


DEFAULT_RETENTION = Retention()


@dataclass(frozen=True, slots=True)
class Frame:
    """One encoded record with the fields that routing, deduplication and the id index need."""

    deployment: str
    request_id: str
    payload: bytes
    ts_ms: int = 0  # the record's ts: its score in the id index
    body_id: str | None = None  # the caller's body id, indexed beside the request id


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


# One script call per deployment and batch: Redis runs it atomically (no other client sees
# half a batch), and redis-py packs one command instead of a MULTI of hundreds of XADDs, which
# cost ~14 us of event-loop time per record. A transient refusal (OOM, READONLY, ...) stops
# the batch; a permanent one (e.g. WRONGTYPE) is reported per record and the rest goes on.
# Each written record's request id (and body id, when the caller sent one) also goes into the
# id index (a sorted set by record ts, in ZADDs of up to 500 records), which feedback reads to
# tell a label for a logged request from an orphan; the index is trimmed like the stream (by
# rank: twice max_len, as a record may have two ids; by score: max_age_s). The index is best
# effort: a refused ZADD never fails the batch. The ids travel as one argument (see
# _index_blob): three more arguments per record cost the event loop ~1.5 us a record in
# redis-py's command packing.
# ARGV: max_len, min stream id, max index size, min index score, the ids, then the payloads.
_WRITE_LUA = """
local key, index = KEYS[1], KEYS[2]
local blob, pos = ARGV[5], 1
local function upto_colon()
  local colon = string.find(blob, ':', pos, true)
  local text = string.sub(blob, pos, colon - 1)
  pos = colon + 1
  return text
end
local function take(n)
  local text = string.sub(blob, pos, pos + n - 1)
  pos = pos + n
  return text
end
local written = 0
local out = {0, ''}
local ids = {}
for i = 6, #ARGV do
  local score = upto_colon()
  local request_id = take(tonumber(upto_colon()))
  local body_id = take(tonumber(upto_colon()))
  local r = redis.pcall('XADD', key, '*', 'r', ARGV[i])
  if type(r) == 'table' and r.err then
    local code = string.match(r.err, '^%u+') or ''
    if code == 'OOM' or code == 'READONLY' or code == 'MISCONF' or code == 'NOREPLICAS'
        or code == 'BUSY' or code == 'LOADING' or code == 'MASTERDOWN' then
      out[2] = r.err
      break
    end
    out[#out + 1] = i - 6
    out[#out + 1] = r.err
  else
    written = written + 1
    local n = #ids
    ids[n + 1] = score
    ids[n + 2] = request_id
    if body_id ~= '' then
      ids[n + 3] = score
      ids[n + 4] = body_id
    end
    if #ids >= 1000 then
      redis.pcall('ZADD', index, unpack(ids))
      ids = {}
    end
  end
end
if #ids > 0 then redis.pcall('ZADD', index, unpack(ids)) end
out[1] = written
if written > 0 then
  if ARGV[1] ~= '' then redis.pcall('XTRIM', key, 'MAXLEN', '~', ARGV[1]) end
  if ARGV[2] ~= '' then redis.pcall('XTRIM', key, 'MINID', '~', ARGV[2]) end
  if ARGV[3] ~= '' then redis.pcall('ZREMRANGEBYRANK', index, 0, -tonumber(ARGV[3]) - 1) end
  if ARGV[4] ~= '' then redis.pcall('ZREMRANGEBYSCORE', index, '-inf', '(' .. ARGV[4]) end
end
return out
"""
_WRITE_SHA = hashlib.sha1(_WRITE_LUA.encode()).hexdigest()


def _index_blob(frames: Sequence[Frame]) -> str:
    """Each frame's ``<ts ms>:<n>:<request id><n>:<body id>`` (n: the UTF-8 length that
    follows; an empty body id for none), for the write script to read in order."""
    parts = []
    for f in frames:
        rid, bid = f.request_id, f.body_id or ""
        parts.append(f"{f.ts_ms}:{len(rid) if rid.isascii() else len(rid.encode())}:{rid}"
                     f"{len(bid) if bid.isascii() else len(bid.encode())}:{bid}")
    return "".join(parts)


class PartialWrite(RedisError):
    """A batch stopped part-way on a transient refusal: some of it may be in Redis."""


async def write_batch(
    redis: Redis,
    frames: Sequence[Frame],
    retention: Callable[[str], Retention],
    now_ms: int,
) -> list[tuple[Frame, Exception]]:
    """XADD every frame (one atomic script call per deployment), index its ids, and trim the
    stream and the index once.

    Raises on a transport failure; ExecAbortError when Redis refused the batch before writing
    any of it; PartialWrite when it stopped part-way. Returns the frames Redis refused one by
    one (a permanent refusal such as WRONGTYPE: the others were written).
    """
    by_deployment: dict[str, list[Frame]] = {}
    for frame in frames:
        by_deployment.setdefault(frame.deployment, []).append(frame)
    rejected: list[tuple[Frame, Exception]] = []
    written = 0
    for deployment, group in by_deployment.items():
        policy = retention(deployment)
        max_len = "" if policy.max_len is None else str(policy.max_len)
        min_id = min_score = ""
        if policy.max_age_s is not None:
            min_score = str(max(0, now_ms - int(policy.max_age_s * 1000)))
            min_id = f"{min_score}-0"
        index_len = "" if policy.max_len is None else str(2 * policy.max_len)
        args: list[bytes | str] = [max_len, min_id, index_len, min_score, _index_blob(group),
                                   *(f.payload for f in group)]
        names = (keys.pairs(deployment), keys.ids(deployment))
        try:
            reply = await redis.evalsha(_WRITE_SHA, 2, *names, *args)
        except NoScriptError:
            await redis.script_load(_WRITE_LUA)
            reply = await redis.evalsha(_WRITE_SHA, 2, *names, *args)
        count, stop = int(reply[0]), reply[1]
        written += count
        for index, error in zip(reply[2::2], reply[3::2], strict=True):
            text = error.decode() if isinstance(error, bytes) else str(error)
            rejected.append((group[int(index)], ResponseError(text)))
        if stop:
            text = stop.decode() if isinstance(stop, bytes) else str(stop)
            if written == 0:
                raise ExecAbortError(f"Redis refused the batch: {text}")
            raise PartialWrite(f"Redis stopped the batch part-way: {text}")
    return rejected


async def server_time_ms(redis: Redis) -> float:
    """Redis's own clock, which stamps stream ids."""
    seconds, micros = await redis.time()
    return seconds * 1000.0 + micros / 1000.0


def parse_frames(payloads: Sequence[bytes]) -> tuple[list[Frame], int]:
    """Frames back from spooled payloads, and how many were unreadable."""
    frames = []
    for payload in payloads:
        with contextlib.suppress(ValueError):  # UnicodeDecodeError is one too
            deployment, request_id, ts, body_id = index_keys(payload)
            frames.append(Frame(deployment, request_id, payload, int(ts * 1000), body_id))
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
                request_id = keys_of((fields or {})[STREAM_FIELD])[1]
            except (KeyError, TypeError, ValueError):
                continue  # not ours to judge: the reader skips garbage too
            if request_id in request_ids:
                found.add(request_id)
        if len(entries) < page:
            return found
        last_id = entries[-1][0]
        start = "(" + (last_id.decode() if isinstance(last_id, bytes) else str(last_id))
