"""create_app(...): wires everything; the lifespan starts parts in order, stops them in reverse.

Start: config -> models (loaded and warmed up) -> prediction log -> shadow workers ->
ready. Stop, in reverse: not ready -> shadow queues drain (bounded) -> prediction log flushes
to Redis or the spool -> models close.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import Receive, Scope, Send

from gateway.backends.registry import ModelSet, load_models
from gateway.config.load import LoadedConfig, load
from gateway.metrics import Metrics
from gateway.predlog.setup import open_prediction_log
from gateway.predlog.sink import RecordSink
from gateway.runtime import Runtime
from gateway.service import Service
from gateway.settings import Settings
from gateway.snapshot import Snapshot, build_snapshot
from gateway.traffic.mirror import ShadowWorker
from gateway.web import feedback, inference, meta, openapi
from gateway.web.auth import Guard
from gateway.web.drain import Drain
from gateway.web.errors import HANDLERS
from gateway.web.middleware import RequestIdMiddleware
from gateway.web.ratelimit import RateLimiter

log = logging.getLogger(__name__)

GC_GEN0_THRESHOLD = 50_000


class GatewayApp(Starlette):
    """Starlette, plus a direct dispatch of inference POSTs.

    The inference endpoints are raw ASGI callables; calling them straight from here skips
    the router walk and Starlette's two exception layers, which on a tiny model cost more
    than the model itself. Everything else takes the ordinary Starlette path.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fast = RequestIdMiddleware(self._endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            found = inference.match(scope["path"])
            if found is not None:
                scope["app"] = self
                scope["endpoint"], scope["path_params"] = found
                await self._fast(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    @staticmethod
    async def _endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await scope["endpoint"](scope, receive, send)


def create_app(settings: Settings | None = None, *, loaded: LoadedConfig | None = None,
               metrics: Metrics | None = None, sink: RecordSink | None = None,
               transport: httpx.AsyncBaseTransport | None = None,
               tune_gc: bool = False, handle_signals: bool = False) -> Starlette:
    """Build the ASGI app; nothing is loaded until the lifespan starts.

    ``loaded``, ``metrics``, ``sink`` and ``transport`` (for remote backends) let tests and
    embedders pass their own; by default they come from ``settings``. ``tune_gc``: once
    started, freeze what is alive and collect the young generation less often;
    ``handle_signals``: on SIGTERM, turn unready and drain for ``settings.drain_s`` before
    the server stops (gateway/web/drain.py). Both are for a process that serves this app
    only: ``shadowgate serve`` sets them.
    """
    settings = settings or Settings.from_env()
    metrics = metrics or Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Each part is pushed on the stack once started, so that it is stopped, in reverse
        # order, however the start-up or the serving ends.
        async with contextlib.AsyncExitStack() as stack:
            guard = Guard.from_settings(settings, metrics)  # a bad tokens file stops here
            app.state.guard = guard
            app.state.feedback_limiter = RateLimiter(
                "feedback", settings.feedback_rate, settings.feedback_burst, "labels",
                metrics=metrics)
            config = loaded or load(settings.config)
            models = await load_models(config, transport)
            stack.push_async_callback(close_models, models)
            snapshot = build_snapshot(config, models, metrics)
            plog = await stack.enter_async_context(
                open_prediction_log(settings, config, metrics, sink))
            service = Service(snapshot, metrics, plog.sink,
                              await start_shadows(stack, snapshot, metrics, settings))
            runtime = Runtime(settings, metrics, service, redis=plog.redis)
            if guard.inference_needs_token:
                runtime.inference_check = functools.partial(guard.check, "inference")
            app.state.runtime = runtime
            if tune_gc:
                # Records and shadow jobs are acyclic and die young; what is alive now
                # (models, config, modules) lives for good. Freezing it and collecting the
                # young generation less often keeps cyclic-GC pauses out of the p99.
                gc.collect()
                gc.freeze()
                gc.set_threshold(GC_GEN0_THRESHOLD, 50, 100)
            runtime.ready = True
            stack.callback(setattr, runtime, "ready", False)  # the first thing undone
            if handle_signals:
                drain = Drain(settings.drain_s, functools.partial(setattr, runtime, "ready",
                                                                  False),
                              asyncio.get_running_loop())
                if drain.install():
                    stack.callback(drain.uninstall)
            log.info("serving revision %s: %d model(s), %d deployment(s), %d shadow worker(s)",
                     config.revision, len(models.by_ref), len(snapshot.deployments),
                     len(service.workers))
            yield

    routes: list[Any] = [*inference.routes, *feedback.routes, *meta.routes, *openapi.routes]
    return GatewayApp(routes=routes, middleware=[Middleware(RequestIdMiddleware)],
                      exception_handlers=HANDLERS, lifespan=lifespan)


async def close_models(models: ModelSet) -> None:
    for backend in models:
        await backend.close()


async def start_shadows(stack: contextlib.AsyncExitStack, snapshot: Snapshot, metrics: Metrics,
                        settings: Settings) -> dict[str, ShadowWorker]:
    """A worker per model that may run as a shadow, each running as a task that ``stack``
    stops: queued jobs drain (bounded), then the task ends."""
    mirror = snapshot.loaded.config.mirror
    workers = {}
    for ref in sorted(snapshot.shadow_refs()):
        worker = ShadowWorker(snapshot.models.by_ref[ref], metrics,
                              queue_size=mirror.queue_size, max_batch=mirror.max_batch,
                              max_wait_s=mirror.max_wait_ms / 1000)
        task = asyncio.create_task(worker.run(), name=f"shadow:{ref}")
        stack.push_async_callback(stop_worker, worker, task, settings.shutdown_timeout_s / 2)
        workers[ref] = worker
    return workers


async def stop_worker(worker: ShadowWorker, task: asyncio.Task[None], timeout: float) -> None:
    await worker.drain(timeout)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory`` and multi-worker serving: settings from SHADOWGATE_*."""
    return create_app(Settings.from_env(), tune_gc=True, handle_signals=True)
