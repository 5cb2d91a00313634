"""The paired record: what every model said about one request, logged together.

Schema version 1. One record per request that went through a deployment; it is
assembled when the primary model has answered and every sampled shadow has
answered, failed, timed out, or been dropped or shed. In Redis it is one stream entry of
``sg:{deployment}:pairs`` whose single field ``r`` holds the record as orjson
bytes (see :func:`encode` / :func:`decode`).

Fields (JSON):

``v``               schema version (int, currently 1)
``request_id``      the ``x-request-id`` of the request (str)
``id``              the ``id`` the caller put in the request body (V2 or /predict), or null;
                    feedback may name a request by it (absent in records written before)
``ts``              wall-clock time the request arrived, Unix seconds (float)
``deployment``      deployment name (str)
``revision``        config revision the request was served under (str)
``key_hash``        blake2b hex digest of the routing key, or null without a key
``bucket``          sticky bucket in [0, 10000) (int)
``variant``         which variant answered the caller: "champion" or "canary"
``rows``            number of rows (first dimension) in the request (int)
``predictions``     list of model entries, the answering model first:
    ``role``        "champion" | "canary" | "shadow"
    ``model``       model name; ``version``: model version (str)
    ``served``      true for the model whose answer went back to the caller (when that
                    model failed, the caller got an error: status "error" or "timeout")
    ``status``      "ok" | "error" | "timeout" | "dropped" | "shed" ("dropped": a full
                    queue or a shutdown; "shed": over the shadows' CPU budget; neither
                    ran, and reports count both as not sampled, not as errors)
    ``latency_ms``  model latency in milliseconds (float, null when dropped or shed)
    ``error``       error message or null
    ``output``      for classifiers: {"label": [class names], "scores": [[p, ...]],
                    "classes": [class names in score order]};
                    otherwise {"tensors": {name: {"datatype", "shape", "data"}}}
                    (a trailing dimension of 1 dropped: [n, 1] is recorded as [n]);
                    null unless status is "ok"
``inputs``          {name: {"datatype", "shape", "data"}} or null when inputs are not logged
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

import orjson

SCHEMA_VERSION = 1
STREAM_FIELD = b"r"

Role = Literal["champion", "canary", "shadow"]
Status = Literal["ok", "error", "timeout", "dropped", "shed"]
Variant = Literal["champion", "canary"]


class Prediction(TypedDict):
    role: Role
    model: str
    version: str
    served: bool
    status: Status
    latency_ms: float | None
    error: str | None
    output: dict[str, Any] | None


class PairedRecord(TypedDict):
    v: int
    request_id: str
    id: NotRequired[str | None]
    ts: float
    deployment: str
    revision: str
    key_hash: str | None
    bucket: int
    variant: Variant
    rows: int
    predictions: list[Prediction]
    inputs: dict[str, Any] | None


def encode(record: PairedRecord) -> bytes:
    """Serialise a record for the stream field ``r`` (orjson, numpy-aware)."""
    return orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY)


_ID_PREFIX = b'{"v":%d,"request_id":"' % SCHEMA_VERSION
_DEPLOYMENT_KEY = b'"deployment":"'


def keys_of(raw: bytes | str) -> tuple[str, str]:
    """(deployment, request_id) of an encoded record without parsing all of it: replay
    scans thousands of entries on the event loop. Raises ValueError on garbage.

    The fast path relies on :func:`encode`'s key order; an unescaped ``"deployment":"``
    cannot occur inside a JSON string, so the first one after the id is the key.
    """
    if isinstance(raw, str):
        raw = raw.encode()
    if raw.startswith(_ID_PREFIX):
        start = len(_ID_PREFIX)
        end = raw.find(b'"', start)
        key = raw.find(_DEPLOYMENT_KEY, end)
        if end > 0 and key > 0 and b"\\" not in raw[start:end]:
            dep_start = key + len(_DEPLOYMENT_KEY)
            dep_end = raw.find(b'"', dep_start)
            if dep_end > 0 and b"\\" not in raw[dep_start:dep_end]:
                return raw[dep_start:dep_end].decode(), raw[start:end].decode()
    data = decode(raw)  # another layout, or an escaped character
    deployment, request_id = data.get("deployment"), data.get("request_id")
    if not isinstance(deployment, str) or not isinstance(request_id, str):
        raise ValueError("a record needs string deployment and request_id")
    return deployment, request_id


def index_keys(raw: bytes | str) -> tuple[str, str, float, str | None]:
    """(deployment, request_id, ts, body id) of an encoded record, for the id index of a
    replayed batch. Raises ValueError on garbage."""
    data = decode(raw)
    deployment, request_id, ts = data.get("deployment"), data.get("request_id"), data.get("ts")
    body_id = data.get("id")
    if (not isinstance(deployment, str) or not isinstance(request_id, str)
            or isinstance(ts, bool) or not isinstance(ts, int | float)):
        raise ValueError("a record needs string deployment and request_id and a numeric ts")
    return deployment, request_id, float(ts), body_id if isinstance(body_id, str) else None


def decode(raw: bytes | str) -> PairedRecord:
    """Parse a stream field back into a record (raises ValueError on garbage)."""
    data = orjson.loads(raw)
    if not isinstance(data, dict) or data.get("v") != SCHEMA_VERSION:
        raise ValueError(f"not a paired record of schema v{SCHEMA_VERSION}")
    return data  # type: ignore[return-value]
