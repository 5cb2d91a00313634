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
import os
import secrets
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import Receive, Scope, Send

from gateway.config.load import LoadedConfig, load
from gateway.metrics import Metrics
from gateway.predlog.setup import open_prediction_log
from gateway.predlog.sink import RecordSink
from gateway.reloader import Reloader
from gateway.rollout import store
from gateway.rollout.controller import RolloutController
from gateway.rollout.state import RolloutState
from gateway.rollout.watcher import FileWatcher, StateWatcher
from gateway.rollout.webhook import Webhook
from gateway.runtime import Runtime
from gateway.serving import Serving
from gateway.settings import Settings
from gateway.web import admin, feedback, inference, meta, openapi, reports
from gateway.web.auth import Guard
from gateway.web.drain import Drain
from gateway.web.errors import HANDLERS
from gateway.web.middleware import AccessLogMiddleware, RequestIdMiddleware
from gateway.web.ratelimit import RateLimiter
from gateway.web.reports import ReportCache

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
               tune_gc: bool = False, handle_signals: bool = False, serve_grpc: bool = False,
               clock: Callable[[], float] = time.time,
               timer: Callable[[], float] = time.perf_counter) -> Starlette:
    """Build the ASGI app; nothing is loaded until the lifespan starts.

    ``loaded``, ``metrics``, ``sink`` and ``transport`` (for remote backends) let tests and
    embedders pass their own; by default they come from ``settings``. ``tune_gc``: once
    started, freeze what is alive and collect the young generation less often;
    ``handle_signals``: on SIGTERM, turn unready and drain for ``settings.drain_s`` before
    the server stops (gateway/web/drain.py); ``serve_grpc``: serve V2 gRPC on
    ``settings.grpc_port`` (unless 0) from the lifespan, in this process and event loop.
    The three are for a process that serves this app only: ``shadowgate serve`` sets them
    (an embedder that sets ``serve_grpc`` owns that port). ``clock``: the wall clock of
    records and rollouts; ``timer``: the monotonic clock of latencies (tests move or
    replace both).
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
            plog = await stack.enter_async_context(
                open_prediction_log(settings, config, metrics, sink))
            serving = Serving(metrics, plog.sink, grace_s=settings.shutdown_timeout_s,
                              transport=transport, clock=clock, timer=timer)
            stack.push_async_callback(serving.close, settings.shutdown_timeout_s / 2)
            states = await initial_states(plog.redis, config)
            snapshot = await serving.apply(config, states)
            runtime = Runtime(settings, metrics, serving, redis=plog.redis, redis_url=plog.url)
            if guard.inference_needs_token:
                runtime.inference_check = functools.partial(guard.check, "inference")
            if config.path is not None:
                runtime.reloader = Reloader(config.path, serving, metrics)
            if plog.redis is not None:
                await start_rollouts(stack, runtime, plog.redis, transport, clock,
                                     settings.rollout_controller)
            if runtime.reloader is not None and settings.watch_config:
                await start_watching(stack, runtime.reloader)
            app.state.runtime = runtime
            app.state.report_cache = ReportCache()
            stack.callback(runtime.access.flush)  # the access lines still waiting
            if serve_grpc and settings.grpc_port:
                await start_grpc(stack, runtime)
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
                     snapshot.revision, len(snapshot.models.by_ref),
                     len(snapshot.deployments), len(snapshot.workers))
            yield

    routes: list[Any] = [*inference.routes, *feedback.routes, *meta.routes, *openapi.routes,
                         *reports.routes, *admin.routes]
    middleware = [Middleware(RequestIdMiddleware)]
    if settings.access_log != "off":  # the inference fast path writes its own lines
        middleware.append(Middleware(AccessLogMiddleware))
    return GatewayApp(routes=routes, middleware=middleware, exception_handlers=HANDLERS,
                      lifespan=lifespan)


async def start_grpc(stack: contextlib.AsyncExitStack, runtime: Runtime) -> None:
    """The V2 gRPC server on the HTTP host, stopped (its calls given the shutdown grace)
    before the parts it uses. Worker processes share the port (SO_REUSEPORT)."""
    from gateway.grpc.server import start_server  # grpc loads only where it is served

    settings = runtime.settings
    server = await start_server(runtime, settings.host, settings.grpc_port,
                                reuse_port=settings.workers > 1,
                                max_message_bytes=runtime.max_body_bytes)
    stack.push_async_callback(server.stop, settings.shutdown_timeout_s / 2)


async def initial_states(redis: Redis | None, config: LoadedConfig
                         ) -> dict[str, RolloutState]:
    """The rollouts' states to start with (none without Redis or when it is away)."""
    names = [d.name for d in config.config.deployments if d.rollout is not None]
    if redis is None or not names:
        return {}
    try:
        return await store.load_states(redis, names)
    except RedisError as exc:
        log.warning("rollout states unavailable (%s): serving their first stages until "
                    "Redis answers", exc)
        return {}


async def start_rollouts(stack: contextlib.AsyncExitStack, runtime: Runtime, redis: Redis,
                         transport: httpx.AsyncBaseTransport | None,
                         clock: Callable[[], float], run_controller_task: bool) -> None:
    """The state watcher (every replica routes by the rollouts' states) and the controller
    (acts where it holds the lock; its loop runs here unless ``run_controller_task`` is
    off, for replicas that only serve), as tasks the stack stops."""
    serving = runtime.serving

    def rollouts() -> list[str]:
        loaded = serving.loaded
        return [] if loaded is None else [
            d.name for d in loaded.config.deployments if d.rollout is not None]

    async def on_states(states: dict[str, RolloutState]) -> None:
        if serving.loaded is not None:
            await serving.apply(serving.loaded, states)

    async def on_change(deployment: str, state: RolloutState) -> None:
        await on_states({**serving.states, deployment: state})

    watcher = StateWatcher(redis, rollouts, on_states)
    webhook = Webhook(runtime.metrics, transport)
    stack.push_async_callback(webhook.close)

    def config() -> LoadedConfig:
        assert serving.loaded is not None
        return serving.loaded

    controller = RolloutController(redis, config, runtime.metrics, owner=owner_id(),
                                   on_change=on_change, webhook=webhook, clock=clock,
                                   lock_ttl_s=runtime.settings.rollout_lock_ttl_s)
    runtime.controller = controller
    stack.push_async_callback(controller.close)
    tasks = [asyncio.create_task(watcher.run(), name="rollout-states")]
    if run_controller_task:
        tasks.append(asyncio.create_task(run_controller(controller), name="rollout-controller"))
    watcher_stop = watcher.stop

    async def stop() -> None:
        watcher_stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    stack.push_async_callback(stop)


async def run_controller(controller: RolloutController, interval_s: float = 1.0) -> None:
    while True:
        # No rollout configured: nothing to evaluate, and no lock to take in Redis every
        # second (a config reload that adds one is seen at the next tick).
        if any(d.rollout is not None for d in controller.config().config.deployments):
            try:
                await controller.run_once()
            except Exception:  # Redis away or a bug: try again at the next tick
                log.warning("rollout controller step failed", exc_info=True)
        await asyncio.sleep(interval_s)


def owner_id() -> str:
    """This process, for the controller lock: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


async def start_watching(stack: contextlib.AsyncExitStack, reloader: Reloader) -> None:
    """Reload on a change of the config file, and on SIGHUP."""
    watcher = FileWatcher(reloader.path, reloader.reload)
    task = asyncio.create_task(watcher.run(), name="config-watcher")
    loop = asyncio.get_running_loop()
    hup: set[asyncio.Task[Any]] = set()

    def on_hup() -> None:
        reload = asyncio.create_task(reloader.reload(), name="config-reload")
        hup.add(reload)
        reload.add_done_callback(hup.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_hup)
    except (ValueError, RuntimeError, NotImplementedError):
        log.debug("SIGHUP reloads only in the main thread")
    else:
        stack.callback(loop.remove_signal_handler, signal.SIGHUP)

    async def stop() -> None:
        watcher.stop.set()
        try:
            async with asyncio.timeout(2.0):
                await task
        except TimeoutError:
            task.cancel()
        await asyncio.gather(task, *hup, return_exceptions=True)

    stack.push_async_callback(stop)


def app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory`` and multi-worker serving: settings from SHADOWGATE_*."""
    settings = Settings.from_env()
    # A spawned worker starts with unconfigured logging (its parent's basicConfig is not
    # inherited): the gateway's INFO lines, failed requests among them, need a handler.
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(settings, tune_gc=True, handle_signals=True, serve_grpc=True)
