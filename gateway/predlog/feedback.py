"""Ground-truth labels that arrive after the prediction, keyed by request id.

A label is posted as one object ``{"request_id", "label", "deployment"?, "ts"?}`` or in bulk as
``{"items": [...], "deployment"?}`` (at most :data:`MAX_ITEMS`). It is stored in the hash
``sg:{deployment}:feedback`` as ``request_id -> orjson {"label", "ts", "received"}``: ``ts`` is
when the outcome happened (the poster's clock, default arrival), ``received`` when we stored it.
A later label for the same request id overwrites the earlier one (corrections win; within one
bulk post the last occurrence wins). Labels are kept until the hash is deleted.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

import orjson
from redis.asyncio import Redis

from gateway.errors import BadRequest
from gateway.metrics import Metrics
from gateway.predlog import keys

log = logging.getLogger(__name__)

Label = str | int | float | bool

MAX_ITEMS = 10_000
MAX_REQUEST_ID = 128
MAX_LABEL = 256
FUTURE_SLACK_S = 86_400.0  # a ts further ahead than this is most likely in milliseconds
HSET_CHUNK = 1_000
HMGET_CHUNK = 1_000

_ITEM_FIELDS = ("request_id", "label", "deployment", "ts")
_BULK_FIELDS = ("items", "deployment")
_INT64 = (-(2**63), 2**63 - 1)  # orjson cannot write integers outside this range
_MISSING = object()


@dataclass(frozen=True, slots=True)
class FeedbackItem:
    """One validated label, ready to store."""

    deployment: str
    request_id: str
    label: Label
    ts: float


class StoredLabel(TypedDict):
    label: Label
    ts: float
    received: float


def _got(value: object) -> str:
    """The JSON type and a short repr of what the client sent, for error messages."""
    if value is _MISSING:
        return "nothing (the field is missing)"
    if value is None:
        return "null"
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)
    if isinstance(value, list | dict):
        return f"{kind} of {len(value)}"
    text = repr(value)
    return f"{kind} {text[:40]}..." if len(text) > 40 else f"{kind} {text}"


def _fail(path: str, expected: str, value: object) -> BadRequest:
    return BadRequest(f"{path}: expected {expected}, got {_got(value)}")


def _check_fields(obj: Mapping[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
    for name in obj:
        if name not in allowed:
            shown = name if len(name) <= 40 else name[:40] + "..."
            raise BadRequest(f"{prefix}{shown}: unknown field, expected one of "
                             f"{', '.join(allowed)}")


def _deployment(value: object, path: str, deployments: Collection[str]) -> str:
    if not isinstance(value, str) or value not in deployments:
        names = ", ".join(sorted(deployments)[:20]) or "none configured"
        raise _fail(path, f"a configured deployment ({names})", value)
    return value


def _label(value: object, path: str) -> Label:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise _fail(path, "an integer within the 64-bit range", value)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(path, "a finite number", value)
        return value
    if isinstance(value, str):
        if not 0 < len(value) <= MAX_LABEL:
            raise _fail(path, f"a string of 1 to {MAX_LABEL} characters", value)
        return value
    raise _fail(path, "a string, number or boolean", value)


def _item(
    raw: object, path: str, deployment: str | None, deployments: Collection[str], now: float
) -> FeedbackItem:
    prefix = f"{path}." if path else ""
    if not isinstance(raw, dict):
        raise _fail(path or "body", "an object", raw)
    _check_fields(raw, _ITEM_FIELDS, prefix)
    request_id = raw.get("request_id", _MISSING)
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID:
        raise _fail(f"{prefix}request_id", f"a string of 1 to {MAX_REQUEST_ID} characters",
                    request_id)
    label = _label(raw.get("label", _MISSING), f"{prefix}label")
    if "deployment" in raw:
        deployment = _deployment(raw["deployment"], f"{prefix}deployment", deployments)
    elif deployment is None:
        raise _fail(f"{prefix}deployment", "a deployment name (there is no default)", _MISSING)
    ts = raw.get("ts", now)
    if (isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts)
            or not 0 <= ts <= now + FUTURE_SLACK_S):
        raise _fail(f"{prefix}ts", "Unix seconds (a finite number, not in the future)", ts)
    return FeedbackItem(deployment, request_id, label, float(ts))


def parse_feedback(
    payload: Any,
    deployments: Collection[str],
    default_deployment: str | None,
    *,
    now: float | None = None,
) -> list[FeedbackItem]:
    """Validate a decoded JSON body into labels, or raise ``BadRequest`` naming the field.

    ``deployments`` are the configured names; ``default_deployment`` applies to items that name
    none (None: every item must name one); ``now`` (default ``time.time()``) is the ``ts`` of
    items without one. Example: ``{"items": [{"request_id": "r1", "label": "malignant"}]}``.
    """
    now = time.time() if now is None else now
    if not isinstance(payload, dict):
        raise _fail("body", "an object", payload)
    if default_deployment is not None and default_deployment not in deployments:
        default_deployment = None  # a stale default must not let labels in for an unknown name
    if "items" not in payload:
        return [_item(payload, "", default_deployment, deployments, now)]
    _check_fields(payload, _BULK_FIELDS, "")
    if "deployment" in payload:
        default_deployment = _deployment(payload["deployment"], "deployment", deployments)
    items = payload["items"]
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        raise _fail("items", f"an array of at most {MAX_ITEMS} objects", items)
    return [_item(raw, f"items[{i}]", default_deployment, deployments, now)
            for i, raw in enumerate(items)]


async def store_feedback(
    redis: Redis, items: Iterable[FeedbackItem], now: float, *, metrics: Metrics | None = None
) -> int:
    """Store labels in one pipeline; returns how many distinct (deployment, request id) were set."""
    grouped: dict[str, dict[str, bytes]] = {}
    for item in items:
        value = orjson.dumps({"label": item.label, "ts": item.ts, "received": now})
        grouped.setdefault(item.deployment, {})[item.request_id] = value  # last one wins
    if not grouped:
        return 0
    pipe = redis.pipeline(transaction=False)
    for deployment, mapping in grouped.items():
        fields = list(mapping.items())
        # Chunked so that one bulk post does not become one huge command blocking Redis.
        for start in range(0, len(fields), HSET_CHUNK):
            pipe.hset(keys.feedback(deployment), mapping=dict(fields[start:start + HSET_CHUNK]))
    await pipe.execute()
    if metrics is not None:
        for deployment, mapping in grouped.items():
            metrics.feedback_received.labels(deployment).inc(len(mapping))
    return sum(len(mapping) for mapping in grouped.values())


def _decode(raw: bytes | str | None) -> StoredLabel | None:
    if raw is None:
        return None
    try:
        data = orjson.loads(raw)
        if not isinstance(data, dict) or "label" not in data:
            raise ValueError("no label")
        return StoredLabel(label=data["label"], ts=float(data.get("ts", 0.0)),
                           received=float(data.get("received", 0.0)))
    except (ValueError, TypeError):
        log.warning("feedback: undecodable label value skipped")
        return None


async def get_feedback(
    redis: Redis, deployment: str, request_ids: Iterable[str]
) -> dict[str, StoredLabel]:
    """Stored labels of those ``request_ids`` that have one (HMGET in chunks)."""
    ids = list(dict.fromkeys(request_ids))
    found: dict[str, StoredLabel] = {}
    key = keys.feedback(deployment)
    for start in range(0, len(ids), HMGET_CHUNK):
        chunk = ids[start:start + HMGET_CHUNK]
        values = await redis.hmget(key, chunk)
        for request_id, raw in zip(chunk, values, strict=True):
            stored = _decode(raw)
            if stored is not None:
                found[request_id] = stored
    return found


async def get_labels(redis: Redis, deployment: str, request_ids: Iterable[str]) -> dict[str, Label]:
    """Labels only: request id -> label, for the ids that have one."""
    stored = await get_feedback(redis, deployment, request_ids)
    return {request_id: value["label"] for request_id, value in stored.items()}
