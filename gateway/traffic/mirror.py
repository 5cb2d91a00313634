"""Shadow traffic off the critical path: a bounded queue and a micro-batching worker per model.

The request path only calls ``submit`` (``put_nowait``); a full queue drops the job and
counts it. The worker gathers jobs for up to ``max_wait`` or ``max_batch`` jobs, runs one
backend call per batch (off the event loop), and resolves each job's slot in its pending
record. A shadow that raises or times out shows up in the record and in metrics only.

Local models share a CPU budget (backends/budget.py): a batch that finds it spent is shed,
not run: each of its jobs is recorded with status ``shed`` and counted in
``shadowgate_shadow_dropped_total{reason="shed"}``, so the queue never grows behind a shadow
heavier than its budget, and the champion keeps its CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.backends.base import Backend, CallContext, MeteredBackend
from gateway.backends.budget import CpuBudget
from gateway.errors import GatewayError
from gateway.metrics import Metrics
from gateway.predlog.record import Status
from gateway.protocol.tensors import Array
from gateway.traffic.live import LiveAgreement
from gateway.traffic.pairing import PendingRecord, batch_outputs_json

log = logging.getLogger(__name__)

BATCHES_PER_TURN = 4


@dataclass(slots=True)
class Job:
    inputs: dict[str, Array]
    rows: int
    pending: PendingRecord
    slot: int
    timeout_s: float
    # The inputs already passed, finite values included, the request path's validation
    # against a model with the same input signature as this shadow's: no need to repeat it.
    checked: bool = False
    v2_id: str | None = None  # the caller's V2 ``id``, passed on to a remote shadow

    def context(self) -> CallContext:
        return CallContext(self.pending.record["request_id"], self.v2_id)


class ShadowWorker:
    """Queue + micro-batcher for one model used as a shadow."""

    def __init__(self, backend: Backend, metrics: Metrics, *, queue_size: int, max_batch: int,
                 max_wait_s: float, clock: Callable[[], float] = time.perf_counter,
                 live: LiveAgreement | None = None, budget: CpuBudget | None = None) -> None:
        """``budget``: the CPU budget of local shadows, charged by a backend that reports
        what its batches cost (MeteredBackend); others (remote models) run outside it."""
        self.backend = backend
        self.live = live
        self.metered = backend if isinstance(backend, MeteredBackend) else None
        self.budget = budget if self.metered is not None else None
        self.settings = (queue_size, max_batch, max_wait_s)
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.clock = clock
        self.queue: asyncio.Queue[Job] = asyncio.Queue(queue_size)
        labels = (backend.name, backend.version)
        self._depth = metrics.shadow_queue_depth.labels(*labels)
        self._batch_size = metrics.shadow_batch_size.labels(*labels)
        self._latency = metrics.shadow_latency.labels(*labels)
        self._dropped = metrics.shadow_dropped
        self._shed = metrics.shadow_dropped.labels(*labels, "shed")
        self._results = {s: metrics.shadow_results.labels(*labels, s)
                         for s in ("ok", "error", "timeout")}
        self._labels = labels
        self._stats = metrics.stats(*labels)  # Triton's statistics: its shadow executions
        self._stopping = False
        self._gathering = False  # the worker waits for a batch to fill
        self._filled = asyncio.Event()

    def submit(self, job: Job) -> None:
        """Never blocks: a full queue (or a stopping worker) drops the job and counts it."""
        if self._stopping:
            self.drop(job, "shutdown")
            return
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            self.drop(job, "queue_full")
            return
        if self._gathering and self.queue.qsize() >= self.max_batch - 1:
            self._filled.set()  # with the job the worker holds, the batch is full

    def drop(self, job: Job, reason: str) -> None:
        self._dropped.labels(*self._labels, reason).inc()
        job.pending.resolve(job.slot, "dropped", None, f"dropped: {reason}")

    async def run_once(self) -> int:
        """Wait for work, then run micro-batches until the queue is empty or this turn's
        share (``BATCHES_PER_TURN`` batches) is used; returns the number of jobs handled.

        An inline backend never suspends, so a turn is bounded explicitly: after it the
        worker yields to the event loop, whose requests come first. Under saturation each
        loop iteration thus serves every ready request and a few shadow batches; what the
        shadows cannot keep up with fills the queue and is dropped (and counted).
        """
        first = await self.queue.get()
        if self.max_wait_s > 0 and self.queue.qsize() < self.max_batch - 1:
            self._filled.clear()
            self._gathering = True
            try:
                async with asyncio.timeout(self.max_wait_s):
                    await self._filled.wait()
            except TimeoutError:
                pass
            finally:
                self._gathering = False
        handled = 0
        for _ in range(BATCHES_PER_TURN):
            batch = [first] if handled == 0 else [self.queue.get_nowait()]
            while len(batch) < self.max_batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            handled += len(batch)
            self._batch_size.observe(len(batch))
            try:
                valid = [job for job in batch if self._accepts(job)]
                if valid and self.budget is not None and not self.budget.available():
                    self.shed(valid)
                elif valid:
                    await self._run(valid)
            finally:
                for _ in batch:
                    self.queue.task_done()
            if self.queue.empty():
                break
        self._depth.set(self.queue.qsize())
        if not self.queue.empty():
            await asyncio.sleep(0)
        return handled

    def shed(self, jobs: list[Job]) -> None:
        """Over the CPU budget: these jobs do not run; recorded and counted as shed."""
        self._shed.inc(len(jobs))
        for job in jobs:
            job.pending.resolve(job.slot, "shed", None, "shed: over the shadows' CPU budget")

    def _accepts(self, job: Job) -> bool:
        if job.checked:
            return True
        try:
            self.backend.signature.validate(job.inputs, self.backend.name)
        except GatewayError as exc:
            self._results["error"].inc()
            job.pending.resolve(job.slot, "error", 0.0,
                                f"input does not fit this model: {exc.message}")
            return False
        return True

    async def _run(self, jobs: list[Job]) -> None:
        if len(jobs) == 1 or not self.backend.signature.batchable:
            # Unknown inputs are never batchable: such a shadow gets one call per job.
            for job in jobs:
                await self._call([job], job.inputs, job.context())
            return
        names = list(jobs[0].inputs)
        merged = {n: np.concatenate([job.inputs[n] for job in jobs]) for n in names}
        ids = tuple(job.pending.record["request_id"] for job in jobs)
        await self._call(jobs, merged, CallContext(ids[0], None, ids))

    async def _call(self, jobs: list[Job], inputs: dict[str, Array], context: CallContext
                    ) -> None:
        timeout = max(job.timeout_s for job in jobs)
        start = self.clock()
        try:
            # asyncio.timeout, not wait_for: no task per batch, and an inline backend's
            # call completes without a trip through the event loop.
            async with asyncio.timeout(timeout):
                if self.metered is not None:
                    outputs, cpu_s = await self.metered.infer_batch_metered(inputs, context)
                    if self.budget is not None:
                        self.budget.charge(cpu_s)
                else:
                    outputs = await self.backend.infer_batch(inputs, context)
        except TimeoutError:
            self._finish(jobs, "timeout", self.clock() - start, f"no answer within {timeout}s")
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a shadow may fail in any way; contain it
            self._finish(jobs, "error", self.clock() - start, f"{type(exc).__name__}: {exc}")
            return
        latency = self.clock() - start
        self._latency.observe(latency)
        try:
            # One pass over the whole batch (class names, score rows), then a slice per job.
            per_job = batch_outputs_json(self.backend, outputs, [job.rows for job in jobs])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            self._finish(jobs, "error", latency, f"unreadable output: {exc!r}")
            return
        late = [job for job in jobs if latency > job.timeout_s]
        if late:
            self._results["timeout"].inc(len(late))
        if len(late) < len(jobs):
            self._results["ok"].inc(len(jobs) - len(late))
        self._stats.executed(len(jobs) - len(late), len(late), sum(job.rows for job in jobs),
                             latency)
        for job, output in zip(jobs, per_job, strict=True):
            if latency <= job.timeout_s:
                job.pending.resolve(job.slot, "ok", latency, output=output)
            else:
                job.pending.resolve(job.slot, "timeout", latency,
                                    f"answered after {latency:.3f}s")
        if self.live is not None and len(late) < len(jobs):
            self._observe(self.live, jobs, per_job, latency)

    def _observe(self, live: LiveAgreement, jobs: list[Job], per_job: list[dict[str, Any]],
                 latency: float) -> None:
        """Feed the live agreement metrics, per deployment and role, once per batch."""
        groups: dict[tuple[str, bool], list[tuple[dict[str, Any], dict[str, Any], str]]] = {}
        for job, output in zip(jobs, per_job, strict=True):
            record = job.pending.record
            served = record["predictions"][0]
            if latency > job.timeout_s or served["output"] is None:
                continue
            champion_role = record["predictions"][job.slot]["role"] == "champion"
            groups.setdefault((record["deployment"], champion_role), []).append(
                (output, served["output"], f"{served['model']}:{served['version']}"))
        model = f"{self.backend.name}:{self.backend.version}"
        for (deployment, champion_role), pairs in groups.items():
            live.observe(deployment, champion_role, model, pairs)

    def _finish(self, jobs: list[Job], status: Status, latency: float, error: str) -> None:
        self._results[status].inc(len(jobs))
        self._stats.executed(0, len(jobs), sum(job.rows for job in jobs), latency)
        for job in jobs:
            job.pending.resolve(job.slot, status, latency, error)

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the worker alive whatever a batch did
                log.exception("shadow worker for %s:%s failed a batch", *self._labels)

    async def drain(self, timeout: float) -> None:
        """Stop taking jobs, let queued ones finish for up to ``timeout``, drop the rest."""
        self._stopping = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), timeout)
        while not self.queue.empty():
            self.drop(self.queue.get_nowait(), "shutdown")
            self.queue.task_done()
