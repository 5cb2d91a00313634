"""Feedback: ground-truth labels and business outcomes that arrive after the prediction.

An item names its request by ``request_id`` (the ``x-request-id`` the gateway returned) or by
``id`` (the ``id`` the caller put in the request body), and carries a ``label``, named numeric
``outcomes`` (``{"converted": 1, "revenue": 12.5}``), or both; ``correction``, ``deployment``
and ``ts`` (when the outcome happened, Unix seconds; default: arrival) are optional. Bulk:
``{"items": [...], "deployment"?}`` with at most :data:`MAX_ITEMS` items.

Labels are checked against the deployment's champion: a class name or class index (stored as
the name) for a classifier, a finite number otherwise. Numbers are kept to 14 significant
digits and times to the millisecond (what Redis's Lua JSON writes back unchanged).

Storage, per deployment, written by one Lua script call per 1,000 items:
``sg:{deployment}:feedback`` maps the id the caller used to JSON ``{"label"?, "outcomes"?,
"ts", "received", "by", "corrections"}`` and ``sg:{deployment}:feedback:received`` holds when
each was last written. The first label for an id is kept, and each outcome name's first value:
a later item changes them only with ``"correction": true`` (counted). An item whose id has no
record in the id index (``sg:{deployment}:ids``, written with the records) is an orphan: kept
while its ``ts`` is within the orphan window (its record may be on its way), refused after it.
The oldest entries beyond the deployment's retention (``max_len`` entries, ``max_age_s`` since
written) are dropped, so storage is bounded however much is posted.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from gateway.errors import BadRequest
from gateway.metrics import Metrics
from gateway.predlog import keys
from gateway.predlog.redisconn import DEFAULT_RETENTION, Retention

log = logging.getLogger(__name__)

Label = str | int | float

MAX_ITEMS = 10_000
MAX_ID = 128
MAX_OUTCOMES = 32
OUTCOME_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"
FUTURE_SLACK_S = 86_400.0  # a ts further ahead than this is most likely in milliseconds
DEFAULT_ORPHAN_WINDOW_S = 600.0
SCRIPT_CHUNK = 1_000  # items per script call: a 10,000-item post never blocks Redis for long
TRIM_BUDGET = 20_000  # most entries one call drops (a retention just lowered takes a few posts)
HMGET_CHUNK = 1_000
_INT64 = (-(2**63), 2**63 - 1)

Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID)]
OutcomeName = Annotated[str, StringConstraints(pattern=OUTCOME_NAME)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class ItemBody(BaseModel):
    """One item as posted (types only; the rules that need the deployment come after)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    request_id: Id | None = None
    id: Id | None = None
    label: str | int | float | None = None
    outcomes: Annotated[dict[OutcomeName, Finite], Field(max_length=MAX_OUTCOMES)] | None = None
    correction: bool = False
    deployment: Any = None  # checked against the configured names afterwards
    ts: Finite | None = None


class BulkBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    items: Annotated[list[ItemBody], Field(max_length=MAX_ITEMS)]
    deployment: Any = None


_ITEM_FIELDS = tuple(ItemBody.model_fields)
_BULK_FIELDS = tuple(BulkBody.model_fields)
_EXPECTED = {
    "request_id": f"a string of 1 to {MAX_ID} characters",
    "id": f"a string of 1 to {MAX_ID} characters",
    "label": "a class name, a class index or a number",
    "outcomes": f"an object of at most {MAX_OUTCOMES} named numbers",
    "correction": "true or false",
    "deployment": "a deployment name",
    "ts": "Unix seconds (a finite number, not in the future)",
    "items": f"an array of at most {MAX_ITEMS} objects",
}


@dataclass(frozen=True, slots=True)
class FeedbackItem:
    """One validated item, ready to store. ``key``: the id the caller used (its x-request-id
    or its body id); ``label``: a class name or a number; ``outcomes``: name -> number."""

    deployment: str
    key: str
    label: Label | None
    ts: float
    outcomes: Mapping[str, float] | None = None
    correction: bool = False


class StoredLabel(TypedDict):
    """Feedback as read back: ``label`` is None when only outcomes were posted."""

    label: Label | None
    outcomes: dict[str, float]
    ts: float
    received: float


@dataclass
class StoreResult:
    """What a post did: counts of items, and the refused ones as (index, reason)."""

    stored: int = 0  # new (or partly new) feedback
    ignored: int = 0  # nothing new, and no correction: the first value stays
    corrected: int = 0  # a correction overwrote something
    orphans: int = 0  # stored or corrected, for an id that has no record yet
    refused: list[tuple[int, str]] = field(default_factory=list)
    trimmed: int = 0  # entries dropped by retention while storing

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"stored": self.stored, "ignored": self.ignored,
                                "corrected": self.corrected, "orphans": self.orphans}
        if self.refused:
            body["refused"] = [{"index": i, "error": why} for i, why in self.refused]
        return body


# -- validation --

def _got(value: object, missing: bool = False) -> str:
    """The JSON type and a short repr of what the client sent, for error messages."""
    if missing:
        return "nothing (the field is missing)"
    if value is None:
        return "null"
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)
    if isinstance(value, list | dict):
        return f"{kind} of {len(value)}"
    text = repr(value)
    return f"{kind} {text[:40]}..." if len(text) > 40 else f"{kind} {text}"


def _fail(path: str, expected: str, value: object, missing: bool = False) -> BadRequest:
    return BadRequest(f"{path}: expected {expected}, got {_got(value, missing)}")


def _explain(exc: ValidationError, bulk: bool) -> BadRequest:
    """The first error as 'path: expected X, got Y' (pydantic's own words only as a last
    resort)."""
    error = exc.errors(include_url=False)[0]
    loc = list(error["loc"])
    prefix = ""
    if bulk and len(loc) >= 2 and loc[0] == "items" and isinstance(loc[1], int):
        prefix, loc = f"items[{loc[1]}].", loc[2:]
    name = str(loc[0]) if loc else ""
    path = f"{prefix}{name}" if name else (prefix.rstrip(".") or "body")
    if error["type"] == "extra_forbidden":
        allowed = _BULK_FIELDS if bulk and not prefix else _ITEM_FIELDS
        shown = name if len(name) <= 40 else name[:40] + "..."
        return BadRequest(f"{prefix}{shown!r}: unknown field, expected one of "
                          f"{', '.join(allowed)}")
    if name == "outcomes" and len(loc) >= 2 and error["type"] != "too_long":
        outcome = str(loc[1])
        if len(loc) >= 3 and loc[2] == "[key]":
            return _fail(f"{path}: name {outcome[:40]!r}", f"a name matching {OUTCOME_NAME}",
                         error["input"])
        return _fail(f"{path}.{outcome[:40]}", "a finite number", error["input"])
    if error["type"] == "model_type" and not name:
        return _fail(path, "an object", error["input"])
    expected = _EXPECTED.get(name, error["msg"])
    return _fail(path, expected, error["input"], missing=error["type"] == "missing")


def _deployment(value: object, path: str, deployments: Mapping[str, Any]) -> str:
    if not isinstance(value, str) or value not in deployments:
        names = ", ".join(sorted(deployments)[:20]) or "none configured"
        raise _fail(path, f"a configured deployment ({names})", value)
    return value


def _number(value: float) -> float:
    """14 significant digits: what Redis's Lua cjson writes back unchanged."""
    return float(f"{value:.14g}")


def _label(value: object, path: str, deployment: str, classes: Sequence[str] | None) -> Label:
    if classes:
        if isinstance(value, str) and value in classes:
            return value
        index = value if type(value) is int else (
            int(value) if isinstance(value, float) and value.is_integer() else None)
        if index is not None and 0 <= index < len(classes):
            return classes[index]
        shown = ", ".join(repr(c) for c in classes[:20]) + (", ..." if len(classes) > 20 else "")
        raise _fail(path, f"one of the classes of deployment {deployment!r} ({shown}) or a "
                          f"class index 0 to {len(classes) - 1}", value)
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            isinstance(value, float) and not math.isfinite(value)):
        raise _fail(path, f"a finite number (deployment {deployment!r} has no class labels)",
                    value)
    if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
        raise _fail(path, "a number within the 64-bit integer range", value)
    return _number(value)


def _item(body: ItemBody, path: str, deployment: str | None,
          deployments: Mapping[str, Sequence[str] | None], now: float) -> FeedbackItem:
    prefix = f"{path}." if path else ""
    if (body.request_id is None) == (body.id is None):
        raise BadRequest(f"{prefix}request_id: expected request_id (the x-request-id the "
                         "gateway returned) or id (the request body's id), exactly one, got "
                         + ("both" if body.request_id is not None else "neither"))
    if body.label is None and not body.outcomes:
        raise _fail(f"{prefix}label", "a label or outcomes (at least one)", None,
                    missing="label" not in body.model_fields_set)
    if body.deployment is not None:
        deployment = _deployment(body.deployment, f"{prefix}deployment", deployments)
    elif deployment is None:
        raise _fail(f"{prefix}deployment", "a deployment name (there is no default)", None,
                    missing=True)
    ts = now if body.ts is None else body.ts
    if not 0 <= ts <= now + FUTURE_SLACK_S:
        raise _fail(f"{prefix}ts", _EXPECTED["ts"], body.ts)
    label = None if body.label is None else _label(body.label, f"{prefix}label", deployment,
                                                   deployments[deployment])
    outcomes = None
    if body.outcomes:
        outcomes = {name: _number(value) for name, value in body.outcomes.items()}
    key = body.request_id if body.request_id is not None else body.id
    assert key is not None
    return FeedbackItem(deployment, key, label, round(ts, 3), outcomes, body.correction)


def parse_feedback(
    payload: Any,
    deployments: Mapping[str, Sequence[str] | None],
    default_deployment: str | None,
    *,
    now: float | None = None,
) -> list[FeedbackItem]:
    """Validate a decoded JSON body into items, or raise ``BadRequest`` naming the field, what
    was expected and what came.

    ``deployments`` maps each configured name to its champion's class names (None: a model
    without classes, whose labels are numbers); ``default_deployment`` applies to items that
    name none (None: every item must); ``now`` (default ``time.time()``) is the ``ts`` of items
    without one. Example: ``{"items": [{"request_id": "r1", "label": "malignant"}]}``.
    """
    now = time.time() if now is None else now
    if not isinstance(payload, dict):
        raise _fail("body", "an object", payload)
    if default_deployment is not None and default_deployment not in deployments:
        default_deployment = None  # a stale default must not let labels in for an unknown name
    bulk = "items" in payload
    try:
        parsed: ItemBody | BulkBody = (BulkBody if bulk else ItemBody).model_validate(payload)
    except ValidationError as exc:
        raise _explain(exc, bulk) from None
    if isinstance(parsed, ItemBody):
        return [_item(parsed, "", default_deployment, deployments, now)]
    if parsed.deployment is not None:
        default_deployment = _deployment(parsed.deployment, "deployment", deployments)
    return [_item(body, f"items[{i}]", default_deployment, deployments, now)
            for i, body in enumerate(parsed.items)]


# -- storage --

# KEYS: feedback hash, received zset, id index. ARGV: received (s), received (ms), orphan
# cutoff (ts, s), by, max_len or '', min received ms or '', trim budget; then per item: key,
# correction ('1'/'0'), ts, label JSON or '', outcomes JSON or ''.
# Replies one status per item (1 stored, 2 corrected, 3 ignored, 4 refused; +10: an orphan),
# then how many entries retention dropped.
_STORE_LUA = """
local fb, rcv, index = KEYS[1], KEYS[2], KEYS[3]
local received, score, cutoff = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local by, budget = ARGV[4], tonumber(ARGV[7])
local out = {}
for i = 8, #ARGV, 5 do
  local key, correction, ts = ARGV[i], ARGV[i + 1] == '1', tonumber(ARGV[i + 2])
  local label, outcomes = ARGV[i + 3], ARGV[i + 4]
  local orphan = 0
  if not redis.call('ZSCORE', index, key) then orphan = 10 end
  if orphan == 10 and ts < cutoff then
    out[#out + 1] = 4
  else
    local entry = nil
    local raw = redis.call('HGET', fb, key)
    if raw then
      local ok, decoded = pcall(cjson.decode, raw)
      if ok and type(decoded) == 'table' then entry = decoded end
    end
    local status = 1
    if entry == nil then
      entry = {ts = ts, corrections = 0}
      if label ~= '' then entry.label = cjson.decode(label) end
      if outcomes ~= '' then entry.outcomes = cjson.decode(outcomes) end
    else
      local changed, overwrote = false, false
      if label ~= '' and (entry.label == nil or correction) then
        overwrote = overwrote or entry.label ~= nil
        entry.label = cjson.decode(label)
        entry.ts = ts
        changed = true
      end
      if outcomes ~= '' then
        if type(entry.outcomes) ~= 'table' then entry.outcomes = {} end
        for name, value in pairs(cjson.decode(outcomes)) do
          if entry.outcomes[name] == nil or correction then
            overwrote = overwrote or entry.outcomes[name] ~= nil
            entry.outcomes[name] = value
            changed = true
          end
        end
      end
      if overwrote then
        status = 2
        entry.corrections = (tonumber(entry.corrections) or 0) + 1
      elseif not changed then
        status = 3
      end
    end
    if status ~= 3 then
      entry.received = received
      entry.by = by
      redis.call('HSET', fb, key, cjson.encode(entry))
      redis.call('ZADD', rcv, score, key)
    end
    if status == 3 then out[#out + 1] = 3 else out[#out + 1] = status + orphan end
  end
end
local trimmed = 0
local function drop(old)
  for j = 1, #old, 1000 do
    local last = math.min(j + 999, #old)
    redis.call('HDEL', fb, unpack(old, j, last))
    redis.call('ZREM', rcv, unpack(old, j, last))
  end
  trimmed = trimmed + #old
end
if ARGV[5] ~= '' then
  local excess = math.min(redis.call('ZCARD', rcv) - tonumber(ARGV[5]), budget)
  if excess > 0 then drop(redis.call('ZRANGE', rcv, 0, excess - 1)) end
end
if ARGV[6] ~= '' and budget > trimmed then
  drop(redis.call('ZRANGEBYSCORE', rcv, '-inf', '(' .. ARGV[6], 'LIMIT', 0, budget - trimmed))
end
out[#out + 1] = trimmed
return out
"""
_STORE_SHA = hashlib.sha1(_STORE_LUA.encode()).hexdigest()


def _json_arg(value: object) -> bytes:
    return b"" if value is None else orjson.dumps(value)


async def store_feedback(
    redis: Redis,
    items: Sequence[FeedbackItem],
    now: float,
    *,
    by: str = "anonymous",
    orphan_window_s: float = DEFAULT_ORPHAN_WINDOW_S,
    retention: Callable[[str], Retention] = lambda _: DEFAULT_RETENTION,
    metrics: Metrics | None = None,
) -> StoreResult:
    """Store ``items`` under the rules of the module docstring, ``by`` naming the poster.

    Items are applied in order (within one post too: the first label for an id wins). Refused
    orphans are reported in the result by their index in ``items``; the others are stored.
    """
    result = StoreResult()
    by_deployment: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        by_deployment.setdefault(item.deployment, []).append(index)
    received = round(now, 3)
    cutoff = now - orphan_window_s
    for deployment, indices in by_deployment.items():
        policy = retention(deployment)
        head: list[bytes | str | float | int] = [
            repr(received), int(received * 1000), repr(cutoff), by,
            "" if policy.max_len is None else policy.max_len,
            "" if policy.max_age_s is None else int((now - policy.max_age_s) * 1000),
            TRIM_BUDGET]
        names = (keys.feedback(deployment), keys.feedback_received(deployment),
                 keys.ids(deployment))
        counts = {"stored": 0, "ignored": 0, "corrected": 0, "orphans": 0}
        trimmed = 0
        for start in range(0, len(indices), SCRIPT_CHUNK):
            chunk = indices[start:start + SCRIPT_CHUNK]
            args = list(head)
            for index in chunk:
                item = items[index]
                args += (item.key, "1" if item.correction else "0", repr(item.ts),
                         _json_arg(item.label), _json_arg(item.outcomes))
            try:
                reply = await redis.evalsha(_STORE_SHA, 3, *names, *args)
            except NoScriptError:
                await redis.script_load(_STORE_LUA)
                reply = await redis.evalsha(_STORE_SHA, 3, *names, *args)
            for index, code in zip(chunk, reply[:-1], strict=True):
                status, orphan = int(code) % 10, int(code) >= 10
                if status == 4:
                    item = items[index]
                    result.refused.append((index, (
                        f"no record for {item.key!r} in deployment {deployment!r}, and its ts "
                        f"is more than {orphan_window_s:g} s ago (the orphan window): labels "
                        "are kept only for requests the gateway logged")))
                    continue
                counts[("stored", "corrected", "ignored")[status - 1]] += 1
                counts["orphans"] += orphan
            trimmed += int(reply[-1])
        result.stored += counts["stored"]
        result.ignored += counts["ignored"]
        result.corrected += counts["corrected"]
        result.orphans += counts["orphans"]
        result.trimmed += trimmed
        if metrics is not None:
            _count(metrics, deployment, by, counts, trimmed)
    result.refused.sort()
    if metrics is not None:
        for deployment in {items[i].deployment for i, _ in result.refused}:
            metrics.feedback_ignored.labels(deployment, "orphan_too_old").inc(
                sum(1 for i, _ in result.refused if items[i].deployment == deployment))
    return result


def _count(metrics: Metrics, deployment: str, by: str, counts: Mapping[str, int],
           trimmed: int) -> None:
    if counts["stored"] or counts["corrected"]:
        metrics.feedback_received.labels(deployment, by).inc(
            counts["stored"] + counts["corrected"])
    if counts["ignored"]:
        metrics.feedback_ignored.labels(deployment, "duplicate").inc(counts["ignored"])
    if counts["corrected"]:
        metrics.feedback_corrections.labels(deployment).inc(counts["corrected"])
    if counts["orphans"]:
        metrics.feedback_orphans.labels(deployment).inc(counts["orphans"])
    if trimmed:
        metrics.feedback_trimmed.labels(deployment).inc(trimmed)


# -- reading --

def decode_stored(raw: bytes | str | None) -> StoredLabel | None:
    """A stored feedback value, or None when it is missing or unreadable (logged)."""
    if raw is None:
        return None
    try:
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        outcomes = data.get("outcomes")
        outcomes = outcomes if isinstance(outcomes, dict) else {}
        label = data.get("label")
        if label is None and not outcomes:
            raise ValueError("neither label nor outcomes")
        return StoredLabel(label=label, outcomes=outcomes, ts=float(data.get("ts", 0.0)),
                           received=float(data.get("received", 0.0)))
    except (ValueError, TypeError):
        log.warning("feedback: undecodable value skipped")
        return None


async def get_feedback(
    redis: Redis, deployment: str, ids: Iterable[str]
) -> dict[str, StoredLabel]:
    """Stored feedback of those ``ids`` (x-request-ids or body ids) that have some (HMGET in
    chunks)."""
    wanted = list(dict.fromkeys(ids))
    found: dict[str, StoredLabel] = {}
    key = keys.feedback(deployment)
    for start in range(0, len(wanted), HMGET_CHUNK):
        chunk = wanted[start:start + HMGET_CHUNK]
        values = await redis.hmget(key, chunk)
        for name, raw in zip(chunk, values, strict=True):
            stored = decode_stored(raw)
            if stored is not None:
                found[name] = stored
    return found


async def get_labels(redis: Redis, deployment: str, ids: Iterable[str]) -> dict[str, Label]:
    """Labels only: id -> label, for the ids that have one."""
    stored = await get_feedback(redis, deployment, ids)
    return {name: value["label"] for name, value in stored.items() if value["label"] is not None}

