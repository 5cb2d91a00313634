"""POST /feedback: ground-truth labels, joined to paired records by request id.

Single: {"request_id": "...", "label": "benign", "deployment"?: "...", "ts"?: 1700000000.0}
Bulk:   {"items": [{...}, ...], "deployment"?: "..."}   (up to 10,000 items)
A later label for the same request id replaces the earlier one, so retries are safe.
"""

from __future__ import annotations

import time

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.errors import NotReady
from gateway.predlog.feedback import parse_feedback, store_feedback
from gateway.protocol.v2 import parse_json
from gateway.runtime import Runtime
from gateway.web.http import check_json_content_type, json_response, read_body


async def feedback(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    check_json_content_type(request)
    body = await read_body(request, runtime.max_body_bytes)
    snapshot = runtime.service.snapshot
    now = time.time()
    items = parse_feedback(parse_json(body), snapshot.deployments.keys(),
                           snapshot.default_deployment, now=now)
    if runtime.redis is None:
        raise NotReady("feedback needs the prediction log in Redis (SHADOWGATE_LOG=redis)")
    try:
        stored = await store_feedback(runtime.redis, items, now, metrics=runtime.metrics)
    except RedisError as exc:
        raise NotReady(f"Redis is unavailable, retry later: {exc}") from None
    return json_response({"stored": stored})


routes = [Route("/feedback", feedback, methods=["POST"])]
