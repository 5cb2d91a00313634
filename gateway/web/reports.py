"""GET /reports/{deployment}: the comparison report, as HTML, JSON or Markdown.

``?since=24h&until=...&candidate=bc-gbt`` as the CLI takes them; the format by ``?format=``
or the ``Accept`` header (``application/json``, ``text/markdown``; HTML otherwise). Needs a
token with the ``reports`` scope (gateway/web/auth.py).

A report reads the whole window, which takes seconds over millions of records: it is built in
a worker thread with its own event loop and Redis connection, never on the request path's
loop, one build at a time per question, and kept for ``CACHE_S`` so that a dashboard
refreshing it costs one build, not one per viewer. The deployment is reported as it is served
now (a rollout's stage included).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.analysis.run import report_from_redis
from gateway.config.load import LoadedConfig
from gateway.errors import BadRequest, NotFound, NotReady
from gateway.predlog.export import parse_time
from gateway.reports import CONTENT_TYPES, Format, render
from gateway.rollout.report import with_rollout
from gateway.runtime import Runtime
from gateway.serving import with_rollouts
from gateway.web.auth import authorize

CACHE_S = 30.0

Key = tuple[str, str | None, str | None, str | None, Format]


@dataclass
class ReportCache:
    """Built reports by question, and one lock per question so a build runs once."""

    entries: dict[Key, tuple[float, str]] = field(default_factory=dict)
    locks: dict[Key, asyncio.Lock] = field(default_factory=dict)


def _format(request: Request) -> Format:
    asked = request.query_params.get("format")
    if asked is not None:
        if asked not in ("html", "json", "md"):
            raise BadRequest(f"format: expected html, json or md, got {asked!r}")
        return asked  # type: ignore[return-value]
    accept = request.headers.get("accept", "")
    if "application/json" in accept:
        return "json"
    if "text/markdown" in accept:
        return "md"
    return "html"


def _time(request: Request, name: str, now: float) -> float | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return parse_time(raw, now)
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}") from None


def _build(loaded: LoadedConfig, deployment: str, url: str, since: float | None,
           until: float | None, candidate: str | None, fmt: Format, now: float) -> str:
    """In a worker thread: its own loop and connection, the report, rendered."""

    async def build() -> str:
        redis = Redis.from_url(url)
        try:
            report = await report_from_redis(loaded, deployment, url, since=since,
                                             until=until, candidate=candidate, now=now)
            report = await with_rollout(report, loaded, redis)
        finally:
            await redis.aclose()
        return render(report, fmt)

    return asyncio.run(build())


async def report(request: Request) -> Response:
    authorize("reports", request)
    runtime: Runtime = request.app.state.runtime
    deployment = request.path_params["deployment"]
    serving = runtime.serving
    if serving.loaded is None or deployment not in runtime.service.snapshot.deployments:
        names = sorted(runtime.service.snapshot.deployments)
        raise NotFound(f"deployment {deployment!r} not found; deployments: {names}")
    if runtime.redis_url is None:
        raise NotReady("reports need the prediction log in Redis (SHADOWGATE_LOG=redis)")
    now = time.time()
    fmt = _format(request)
    since, until = _time(request, "since", now), _time(request, "until", now)
    candidate = request.query_params.get("candidate")
    key: Key = (deployment, request.query_params.get("since"),
                request.query_params.get("until"), candidate, fmt)
    cache: ReportCache = request.app.state.report_cache
    lock = cache.locks.setdefault(key, asyncio.Lock())
    async with lock:
        hit = cache.entries.get(key)
        if hit is None or time.monotonic() - hit[0] > CACHE_S:
            loaded = with_rollouts(serving.loaded, serving.states)
            try:
                text = await asyncio.to_thread(_build, loaded, deployment, runtime.redis_url,
                                               since, until, candidate, fmt, now)
            except (RedisError, OSError) as exc:
                raise NotReady(f"Redis is unavailable, retry later: {exc}") from None
            hit = cache.entries[key] = (time.monotonic(), text)
    return Response(hit[1], headers={"content-type": CONTENT_TYPES[fmt],
                                     "cache-control": f"private, max-age={int(CACHE_S)}"})


routes = [Route("/reports/{deployment}", report, methods=["GET"])]
