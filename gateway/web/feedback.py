"""POST /feedback: labels and outcomes, joined to paired records by request id or body id.

Single: {"request_id" | "id": "...", "label"?: ..., "outcomes"?: {...}, "correction"?: false,
         "deployment"?: "...", "ts"?: 1700000000.0}
Bulk:   {"items": [{...}, ...], "deployment"?: "..."}   (up to 10,000 items)
Answer: {"stored", "ignored", "corrected", "orphans"} (+ "refused": [{"index", "error"}] when
a bulk post had orphans past the window; a single one is a 404).

The caller needs a token with the ``feedback`` scope (gateway/web/auth.py) and is held to its
rate of labels per second (429 with Retry-After). The rules (first label wins, corrections,
orphans, bounded storage) are in gateway/predlog/feedback.py.
"""

from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.errors import NotFound, NotReady
from gateway.predlog.feedback import parse_feedback, store_feedback
from gateway.predlog.redisconn import DEFAULT_RETENTION, Retention
from gateway.predlog.setup import retention_of
from gateway.protocol.v2 import parse_json
from gateway.runtime import Runtime
from gateway.snapshot import Snapshot
from gateway.web.auth import authorize
from gateway.web.http import check_json_content_type, json_response, read_body
from gateway.web.ratelimit import RateLimiter

log = logging.getLogger(__name__)


def label_classes(snapshot: Snapshot) -> dict[str, tuple[str, ...] | None]:
    """Deployment -> its champion's class names (None: labels are numbers)."""
    out: dict[str, tuple[str, ...] | None] = {}
    for name, dep in snapshot.deployments.items():
        info = dep.champion.classifier
        out[name] = info.class_labels if info is not None and info.class_labels else None
    return out


async def feedback(request: Request) -> Response:
    principal = authorize("feedback", request)
    runtime: Runtime = request.app.state.runtime
    check_json_content_type(request)
    body = await read_body(request, runtime.max_body_bytes)
    snapshot = runtime.service.snapshot
    now = time.time()
    payload = parse_json(body)
    items = parse_feedback(payload, label_classes(snapshot), snapshot.default_deployment,
                           now=now)
    limiter: RateLimiter = request.app.state.feedback_limiter
    limiter.check(principal.name, len(items))
    if runtime.redis is None:
        raise NotReady("feedback needs the prediction log in Redis (SHADOWGATE_LOG=redis)")
    retention = retention_of(snapshot.loaded)

    def policy(deployment: str) -> Retention:
        return retention.get(deployment, DEFAULT_RETENTION)

    try:
        result = await store_feedback(
            runtime.redis, items, now, by=principal.name,
            orphan_window_s=runtime.settings.feedback_orphan_window_s, retention=policy,
            metrics=runtime.metrics)
    except RedisError as exc:
        raise NotReady(f"Redis is unavailable, retry later: {exc}") from None
    log.info("feedback by %r: %d item(s): %d stored, %d ignored, %d corrected, %d orphan(s), "
             "%d refused", principal.name, len(items), result.stored, result.ignored,
             result.corrected, result.orphans, len(result.refused))
    if result.refused and "items" not in payload:  # one item: its refusal is the answer
        raise NotFound(result.refused[0][1])
    return json_response(result.as_json())


routes = [Route("/feedback", feedback, methods=["POST"])]
