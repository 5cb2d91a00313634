"""Serving: what the gateway serves now, and the one way to change it.

``apply`` takes a valid config (and the rollouts' runtime states) and swaps it in: models that
are new or changed are loaded and warmed up first, while the old ones keep serving; then one
snapshot (models, deployments as the rollouts shape them, shadow workers) replaces the old one
in a single assignment, so a request finishes on the snapshot it began with. Shadow workers
of models that are no longer shadows drain; models no longer used are closed after a grace
period (requests still on the old snapshot finish first). A config that fails to load (a
model file missing, a remote down) changes nothing: the error is raised and the old snapshot
keeps serving.

Serving also owns what the shadow workers share: the CPU budget of local shadows
(``mirror.cpu_budget``) and the shadow process that runs heavy ones (``mirror.isolation``),
started when a model is placed there and stopped with the rest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from gateway.backends.base import Backend
from gateway.backends.budget import CpuBudget
from gateway.backends.onnx import OnnxBackend
from gateway.backends.registry import ModelSet, load_models
from gateway.backends.shadowproc import ShadowProcess
from gateway.config.load import LoadedConfig
from gateway.config.schema import ModelSpec
from gateway.metrics import Metrics
from gateway.predlog.sink import RecordSink
from gateway.rollout.state import RolloutState, effective
from gateway.service import Service
from gateway.snapshot import Snapshot, build_snapshot, decision_rules
from gateway.traffic.live import LiveAgreement
from gateway.traffic.mirror import ShadowWorker

log = logging.getLogger(__name__)


def fingerprint(loaded: LoadedConfig, spec: ModelSpec) -> tuple[Any, ...]:
    """What makes a loaded model reusable by a new config: its settings and, for a local
    model, its file's size and modification time (for a remote one, its card's)."""
    key: tuple[Any, ...] = (spec.model_dump_json(),)
    path = None
    if spec.remote is None and spec.python is None:
        path = loaded.model_dir(spec) / "model.onnx"
    elif spec.remote is not None and spec.remote.card is not None:
        path = loaded.relative(spec.remote.card)
    if path is not None:
        try:
            stat = path.stat()
            key += (str(path), stat.st_size, stat.st_mtime_ns)
        except OSError:
            key += (str(path),)
    return key


def with_rollouts(loaded: LoadedConfig, states: Mapping[str, RolloutState]) -> LoadedConfig:
    """The config as served: each deployment shaped by its rollout's state."""
    deployments = [effective(d, states.get(d.name)) for d in loaded.config.deployments]
    return dataclasses.replace(
        loaded, config=loaded.config.model_copy(update={"deployments": deployments}))


class Serving:
    """Owns the service's snapshot, its models and shadow workers."""

    def __init__(self, metrics: Metrics, sink: RecordSink, *, grace_s: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], float] = time.time,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        """``clock``: the wall clock that stamps records; ``timer``: the monotonic clock of
        latencies (tests move or replace both)."""
        self.clock = clock
        self.timer = timer
        self.metrics = metrics
        self.sink = sink
        self.grace_s = grace_s
        self.transport = transport
        self.service: Service | None = None
        self.loaded: LoadedConfig | None = None  # the file's config (before rollouts)
        self.states: dict[str, RolloutState] = {}
        self.live = LiveAgreement(metrics, {})
        self._fingerprints: dict[str, tuple[Any, ...]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}  # worker tasks by model ref
        self._retiring: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self.budget = CpuBudget(None)  # set by apply from mirror.cpu_budget
        self.process: ShadowProcess | None = None  # the shadow process, once one is needed

    @property
    def snapshot(self) -> Snapshot:
        assert self.service is not None, "apply() first"
        return self.service.snapshot

    async def apply(self, loaded: LoadedConfig,
                    states: Mapping[str, RolloutState] | None = None) -> Snapshot:
        """Serve ``loaded`` (shaped by ``states``, default: the current ones); raises
        ConfigError when a model cannot be loaded, leaving the current snapshot in place."""
        async with self._lock:
            states = dict(self.states if states is None else states)
            served = with_rollouts(loaded, states)
            old = self.service.snapshot if self.service is not None else None
            models, fresh = await self._models(served, old)
            snapshot = build_snapshot(served, models, self.metrics)
            await self._place(snapshot)
            workers = self._workers(snapshot, old)
            snapshot = dataclasses.replace(snapshot, workers=workers)
            self.live.set_rules(decision_rules(snapshot))
            if self.service is None:
                self.service = Service(snapshot, self.metrics, self.sink, clock=self.clock,
                                       timer=self.timer)
            else:
                self.service.snapshot = snapshot  # the swap: one assignment
            self.loaded, self.states = loaded, states
            if old is not None and old.revision != served.revision:
                # Set to 0 rather than cleared: multiprocess mode cannot clear labels.
                self.metrics.config_revision.labels(old.revision).set(0)
            self.metrics.config_revision.labels(served.revision).set(1)
            if old is not None:
                self._retire(old, snapshot, fresh)
            return snapshot

    async def _models(self, served: LoadedConfig, old: Snapshot | None
                      ) -> tuple[ModelSet, set[str]]:
        """The models of ``served``: reused from ``old`` where unchanged, else loaded."""
        keep: dict[str, Backend] = {}
        wanted = {m.ref: fingerprint(served, m) for m in served.config.models}
        if old is not None:
            for ref, backend in old.models.by_ref.items():
                if wanted.get(ref) == self._fingerprints.get(ref):
                    keep[ref] = backend
        new = [m for m in served.config.models if m.ref not in keep]
        subset = dataclasses.replace(served, config=served.config.model_copy(
            update={"models": new, "deployments": []}))
        loaded = await load_models(subset, self.transport) if new else ModelSet({}, {})
        by_ref = {m.ref: keep.get(m.ref) or loaded.by_ref[m.ref] for m in served.config.models}
        self._fingerprints = wanted
        return ModelSet.of(by_ref), {m.ref for m in new}

    async def _place(self, snapshot: Snapshot) -> None:
        """Where each local shadow's batches run; the shadow process starts here when a
        model is placed in it (so that its first batches do not wait for it)."""
        mirror = snapshot.loaded.config.mirror
        self.budget.set_share(mirror.cpu_budget)
        if mirror.isolation in ("auto", "process") and self.process is None:
            self.process = ShadowProcess(nice=mirror.process_nice, idle=mirror.process_idle)
        process = self.process if mirror.isolation in ("auto", "process") else None
        if process is not None:  # from its next start
            process.nice, process.idle = mirror.process_nice, mirror.process_idle
        placed = False
        for ref in snapshot.shadow_refs():
            backend = snapshot.models.by_ref[ref]
            if isinstance(backend, OnnxBackend):
                backend.place_shadows(mirror.isolation, process)
                placed = placed or backend.shadow_mode == "process"
        if placed and process is not None:
            await process.start()

    def _workers(self, snapshot: Snapshot, old: Snapshot | None) -> dict[str, ShadowWorker]:
        """A worker per model that may run as a shadow: kept where its model is the same."""
        mirror = snapshot.loaded.config.mirror
        workers: dict[str, ShadowWorker] = {}
        for ref in sorted(snapshot.shadow_refs()):
            backend = snapshot.models.by_ref[ref]
            previous = old.workers.get(ref) if old is not None else None
            if (previous is not None and previous.backend is backend and ref in self._tasks
                    and previous.settings == (mirror.queue_size, mirror.max_batch,
                                              mirror.max_wait_ms / 1000)):
                workers[ref] = previous
                continue
            worker = ShadowWorker(backend, self.metrics, queue_size=mirror.queue_size,
                                  max_batch=mirror.max_batch,
                                  max_wait_s=mirror.max_wait_ms / 1000, live=self.live,
                                  budget=self.budget, clock=self.timer)
            if ref in self._tasks:  # its model changed: the old worker drains and stops
                self._retire_worker(old.workers[ref] if old else None, self._tasks.pop(ref))
            self._tasks[ref] = asyncio.create_task(worker.run(), name=f"shadow:{ref}")
            workers[ref] = worker
        for ref in [r for r in self._tasks if r not in workers]:
            self._retire_worker(old.workers.get(ref) if old else None, self._tasks.pop(ref))
        return workers

    def _retire_worker(self, worker: ShadowWorker | None, task: asyncio.Task[None]) -> None:
        async def stop() -> None:
            if worker is not None:
                await worker.drain(self.grace_s / 2)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        self._track(stop())

    def _retire(self, old: Snapshot, new: Snapshot, fresh: set[str]) -> None:
        """Close the old snapshot's models the new one does not use, after the grace."""
        in_use = {id(b) for b in new.models.by_ref.values()}
        gone = [b for b in old.models.by_ref.values() if id(b) not in in_use]
        if gone:
            async def close() -> None:
                await asyncio.sleep(self.grace_s)  # requests on the old snapshot finish
                for backend in gone:
                    await backend.close()

            self._track(close())
        log.info("serving revision %s: %d model(s) loaded, %d closed", new.revision,
                 len(fresh), len(gone))

    def _track(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def close(self, timeout: float) -> None:
        """Stop every worker (queued jobs drain, bounded) and close every model."""
        snapshot = self.service.snapshot if self.service is not None else None
        if snapshot is not None:
            await asyncio.gather(*(w.drain(timeout) for w in snapshot.workers.values()))
        for task in [*self._tasks.values(), *self._retiring]:
            task.cancel()
        await asyncio.gather(*self._tasks.values(), *self._retiring, return_exceptions=True)
        self._tasks.clear()
        if snapshot is not None:
            for backend in snapshot.models:
                await backend.close()
        if self.process is not None:
            await self.process.close(timeout)

