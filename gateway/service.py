"""The request path, with no HTTP types in it: resolve, route, validate, predict, pair.

Nothing here awaits anything but the answering model: shadows are handed to their
workers with ``put_nowait`` and the paired record goes to the sink without waiting.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.backends.base import Backend
from gateway.errors import BadRequest, GatewayError, InvalidInput, NotFound
from gateway.metrics import Metrics
from gateway.predlog.record import Prediction, Variant
from gateway.predlog.sink import RecordSink
from gateway.protocol.tensors import Array, InferenceRequest
from gateway.snapshot import Deployment, Snapshot
from gateway.traffic.mirror import Job, ShadowWorker
from gateway.traffic.pairing import PendingRecord, new_record, output_json, tensors_json
from gateway.traffic.router import Route, route

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Call:
    """Per-request facts the web layer extracted."""

    request_id: str
    routing_key: str | None = None
    forced: str | None = None


@dataclass(slots=True)
class Answer:
    backend: Backend
    outputs: dict[str, Array]
    variant: Variant | None = None
    deployment: Deployment | None = None


class ModelFailed(GatewayError):
    """A local model raised on valid input."""

    code = "model_error"


class Service:
    """Serves requests against the current snapshot."""

    def __init__(self, snapshot: Snapshot, metrics: Metrics, sink: RecordSink,
                 workers: dict[str, ShadowWorker], clock: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random) -> None:
        self.snapshot = snapshot
        self.metrics = metrics
        self.sink = sink
        self.workers = workers
        self.clock = clock
        self.rand = rand
        self._variant_counters = {(d, v): metrics.variant_requests.labels(d, v)
                                  for d in snapshot.deployments for v in ("champion", "canary")}

    def target(self, name: str, version: str | None) -> Deployment | Backend:
        """The deployment or concrete model a request names (raises NotFound)."""
        snap = self.snapshot
        dep = snap.deployments.get(name)
        if dep is None:
            if name not in snap.models.versions:
                raise NotFound(f"model {name!r} not found; deployments: "
                               f"{sorted(snap.deployments)}, "
                               f"models: {sorted(snap.models.versions)}")
            return snap.models.get(name, version)
        if version is not None:
            raise NotFound(f"{name!r} is a deployment and has no versions; address a model "
                           f"version by the model's own name, e.g. /v2/models/"
                           f"{dep.champion.name}/versions/{dep.champion.version}")
        return dep

    async def infer(self, name: str, version: str | None, request: InferenceRequest,
                    call: Call, target: Deployment | Backend | None = None) -> Answer:
        """Serve ``request``; ``target``: what ``self.target(name, version)`` returned, when
        the caller already looked it up."""
        if target is None:
            target = self.target(name, version)
        if isinstance(target, Deployment):
            return await self._deployment(target, request, call)
        outputs, _ = await self._predict(target, request)
        return Answer(target, self._select(target, request, outputs))

    async def _predict(self, backend: Backend, request: InferenceRequest
                       ) -> tuple[dict[str, Array], float]:
        mm = self.snapshot.model_metrics[f"{backend.name}:{backend.version}"]
        try:
            backend.signature.validate(request.inputs, backend.name, request.finite)
            if backend.signature.batchable and request.rows == 0:
                raise InvalidInput("inputs: the first dimension is 0; send at least one row")
            start = time.perf_counter()
            try:
                outputs = await backend.infer(request.inputs)
            except GatewayError:
                raise
            except Exception as exc:
                log.exception("model %s:%s failed", backend.name, backend.version)
                raise ModelFailed(f"model {backend.name}:{backend.version} failed: "
                                  f"{type(exc).__name__}: {exc}") from None
            elapsed = time.perf_counter() - start
        except GatewayError as exc:
            self.metrics.request_failure.labels(backend.name, backend.version, exc.code).inc()
            exc.counted = True
            raise
        mm.compute.observe(elapsed)
        return outputs, elapsed

    @staticmethod
    def _select(backend: Backend, request: InferenceRequest,
                outputs: dict[str, Array]) -> dict[str, Array]:
        """The outputs the caller asked for (all by default)."""
        if request.outputs is None:
            return outputs
        unknown = [n for n in request.outputs if n not in outputs]
        if unknown:
            raise BadRequest(f"outputs: unknown output(s) {unknown}; model "
                             f"{backend.name!r} has {sorted(outputs)}")
        return {n: outputs[n] for n in request.outputs}

    async def _deployment(self, dep: Deployment, request: InferenceRequest, call: Call) -> Answer:
        snap = self.snapshot
        forced = call.forced if dep.spec.routing.allow_force else None
        try:
            rt = route(dep.plan, call.routing_key, forced, self.rand)
        except LookupError:
            names = [c.model for c in dep.plan.canaries]
            raise BadRequest(f"header {dep.spec.routing.force_header}: expected 'champion', "
                             f"'canary' or a canary model {names}, got {forced!r}") from None
        backend = snap.models.by_ref[rt.primary]
        ts = self.clock()
        outputs, elapsed = await self._predict(backend, request)
        self._variant_counters[dep.spec.name, rt.variant].inc()
        self._pair(dep, rt, backend, request, call, ts, outputs, elapsed)
        return Answer(backend, self._select(backend, request, outputs), rt.variant, dep)

    def _pair(self, dep: Deployment, rt: Route, backend: Backend, request: InferenceRequest,
              call: Call, ts: float, outputs: dict[str, Array], elapsed: float) -> None:
        """Build the paired record and hand a job to every sampled shadow."""
        models = self.snapshot.models.by_ref
        # Literals, not helper calls: this runs once per request.
        predictions: list[Prediction] = [{
            "role": rt.variant, "model": backend.name, "version": backend.version,
            "served": True, "status": "ok", "latency_ms": round(elapsed * 1000, 4),
            "error": None, "output": output_json(backend, outputs)}]
        for plan in rt.shadows:
            model = models[plan.model]
            predictions.append({
                "role": plan.role, "model": model.name, "version": model.version,
                "served": False, "status": "dropped", "latency_ms": None, "error": None,
                "output": None})
        spec = dep.spec
        inputs = None
        if spec.log_inputs and (spec.input_sample_percent >= 100
                                or self.rand() * 100 < spec.input_sample_percent):
            inputs = tensors_json(request.inputs)
        record = new_record(call.request_id, ts, spec.name, self.snapshot.revision, rt.key_hash,
                            rt.bucket, rt.variant, request.rows, predictions, inputs)
        pending = PendingRecord(record, self.sink, len(rt.shadows))
        same = self.snapshot.same_inputs
        for slot, shadow in enumerate(rt.shadows, start=1):
            checked = request.finite and (rt.primary, shadow.model) in same
            self.workers[shadow.model].submit(
                Job(request.inputs, request.rows, pending, slot, shadow.timeout_s, checked))
