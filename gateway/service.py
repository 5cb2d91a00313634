"""The request path, with no HTTP types in it: resolve, route, validate, predict, pair.

Nothing here awaits anything but the answering model: shadows are handed to their
workers with ``put_nowait`` and the paired record goes to the sink without waiting.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from gateway.backends.base import Backend, CallContext
from gateway.errors import BadRequest, GatewayError, InvalidInput, NotFound
from gateway.metrics import Metrics, ModelMetrics
from gateway.plainmetrics import CounterChild
from gateway.predlog.record import Prediction, Variant
from gateway.predlog.sink import RecordSink
from gateway.protocol.tensors import Array, InferenceRequest
from gateway.snapshot import Deployment, Snapshot
from gateway.traffic.mirror import Job
from gateway.traffic.pairing import PendingRecord, new_record, output_json, tensors_json
from gateway.traffic.router import Route, route

log = logging.getLogger(__name__)


Target = Deployment | Backend


@dataclass(slots=True)
class Call:
    """Per-request facts from the transport: request id, sticky key, forced variant."""

    request_id: str
    routing_key: str | None = None
    forced: str | None = None


def routing_call(target: Target, request_id: str, headers: Mapping[bytes, bytes],
                 query_string: bytes, parameters: Mapping[str, Any] | None) -> Call:
    """The sticky routing key (header, query parameter, then JSON field) and the forced
    variant (only where the deployment allows forcing), from lower-cased header names."""
    if not isinstance(target, Deployment):
        return Call(request_id)
    routing = target.spec.routing
    key = None
    if routing.header:
        key = _header(headers, routing.header)
    if key is None and routing.query and query_string:
        values = parse_qs(query_string.decode("latin-1")).get(routing.query)
        key = values[0] if values else None
    if key is None and routing.json_field and parameters:
        value = parameters.get(routing.json_field)
        key = None if value is None else str(value)
    forced = _header(headers, routing.force_header) if routing.allow_force else None
    return Call(request_id, key or None, forced)


def _header(headers: Mapping[bytes, bytes], name: str) -> str | None:
    value = headers.get(name.encode())
    return None if value is None else value.decode("latin-1")


@dataclass(slots=True)
class Answer:
    backend: Backend
    outputs: dict[str, Array]
    variant: Variant | None = None
    deployment: Deployment | None = None
    compute_s: float = 0.0  # the answering model's call
    metrics: ModelMetrics | None = None  # the answering model's metric children


class ModelFailed(GatewayError):
    """A local model raised on valid input."""

    code = "model_error"


class Service:
    """Serves requests against the current snapshot.

    It resolves what a request names (``target``) and serves it (``infer``). Transports
    (HTTP, gRPC) count each request once, when it is done: ``count_success`` or
    ``count_failure``, which knows whom to count it under from the error.
    """

    def __init__(self, snapshot: Snapshot, metrics: Metrics, sink: RecordSink,
                 clock: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        """``clock``: wall time of records; ``timer``: the monotonic clock latencies are
        measured with (tests pass their own for both)."""
        self.snapshot = snapshot  # replaced whole by a reload; a request keeps the one it began on
        self.metrics = metrics
        self.sink = sink
        self.clock = clock
        self.rand = rand
        self.timer = timer
        self._variant_counters: dict[tuple[str, str], CounterChild] = {}

    def target(self, name: str, version: str | None, snap: Snapshot | None = None) -> Target:
        """The deployment or concrete model a request names (raises NotFound)."""
        snap = snap or self.snapshot
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

    def count_success(self, answer: Answer, rows: int, duration_s: float) -> None:
        """A request answered in ``duration_s``: MLServer's series of the answering model,
        Triton's of that model and of its deployment."""
        mm = answer.metrics
        if mm is not None:
            mm.success.inc()
            mm.duration.observe(duration_s)
            mm.stats.succeeded(rows, duration_s, answer.compute_s)
        if answer.deployment is not None:
            answer.deployment.stats.succeeded(rows, duration_s, answer.compute_s)

    def count_failure(self, snap: Snapshot, target: Target | None, exc: GatewayError,
                      duration_s: float) -> None:
        """A failed request, counted once: under the model it was routed to
        (``exc.model``), else under what it named; a deployment's request refused before
        routing counts under the deployment's own name (version ""), never its champion.
        Nothing is counted for a request that named nothing known (``target`` None)."""
        if target is None:
            return
        if exc.model is not None:
            name, version = exc.model
        elif isinstance(target, Deployment):
            name, version = target.spec.name, ""
        else:
            name, version = target.name, target.version
        self.metrics.request_failure.labels(name, version, exc.code).inc()
        mm = snap.model_metrics.get(f"{name}:{version}")
        if mm is not None:
            mm.stats.failed(duration_s)
        if isinstance(target, Deployment):
            target.stats.failed(duration_s)

    async def infer(self, target: Target, request: InferenceRequest, call: Call,
                    snap: Snapshot | None = None) -> Answer:
        """Serve ``request`` on what ``self.target`` resolved in ``snap`` (default: now).

        A GatewayError raised after routing names the model (``exc.model``, and
        ``exc.model_ran`` when the model ran and failed rather than refused the input)."""
        snap = snap or self.snapshot
        if isinstance(target, Deployment):
            return await self._deployment(snap, target, request, call)
        outputs, elapsed, mm = await self._predict(snap, target, request, call)
        return Answer(target, _select(request, outputs), compute_s=elapsed, metrics=mm)

    async def _predict(self, snap: Snapshot, backend: Backend, request: InferenceRequest,
                       call: Call) -> tuple[dict[str, Array], float, ModelMetrics]:
        mm = snap.model_metrics[f"{backend.name}:{backend.version}"]
        try:
            signature = backend.signature
            signature.validate(request.inputs, backend.name, request.finite)
            if signature.batchable and request.rows == 0:
                raise InvalidInput("inputs: the first dimension is 0; send at least one row")
            if request.outputs is not None and signature.outputs_known:
                _check_outputs(backend, request.outputs)
            start = self.timer()
            try:
                outputs = await backend.infer(request.inputs,
                                              CallContext(call.request_id, request.id))
            except GatewayError as exc:
                exc.model_ran = True
                raise
            except Exception as exc:
                log.exception("model %s:%s failed", backend.name, backend.version)
                failure = ModelFailed(f"model {backend.name}:{backend.version} failed: "
                                      f"{type(exc).__name__}: {exc}")
                failure.model_ran = True
                raise failure from None
            elapsed = self.timer() - start
            if request.outputs is not None and not signature.outputs_known:
                _check_outputs(backend, request.outputs, outputs)  # outputs known only now
        except GatewayError as exc:
            exc.model = (backend.name, backend.version)
            raise
        mm.compute.observe(elapsed)
        return outputs, elapsed, mm

    async def _deployment(self, snap: Snapshot, dep: Deployment, request: InferenceRequest,
                          call: Call) -> Answer:
        try:
            rt = route(dep.plan, call.routing_key, call.forced, self.rand)
        except LookupError:
            names = [c.model for c in dep.plan.canaries]
            raise BadRequest(
                f"header {dep.spec.routing.force_header}: expected 'champion', 'canary' or a "
                f"canary model {names}, got {call.forced!r}") from None
        backend = snap.models.by_ref[rt.primary]
        ts = self.clock()
        start = self.timer()
        try:
            outputs, elapsed, mm = await self._predict(snap, backend, request, call)
        except GatewayError as exc:
            if exc.status_code >= 500:  # valid input the model failed on: still recorded
                self._pair(snap, dep, rt, backend, request, call, ts, None,
                           self.timer() - start, exc)
            raise
        counter = self._variant_counters.get((dep.spec.name, rt.variant))
        if counter is None:
            counter = self._variant_counters[dep.spec.name, rt.variant] = \
                self.metrics.variant_requests.labels(dep.spec.name, rt.variant)
        counter.inc()
        self._pair(snap, dep, rt, backend, request, call, ts, outputs, elapsed)
        return Answer(backend, _select(request, outputs), rt.variant, dep, elapsed, mm)

    def _pair(self, snap: Snapshot, dep: Deployment, rt: Route, backend: Backend,
              request: InferenceRequest, call: Call, ts: float,
              outputs: dict[str, Array] | None, elapsed: float,
              failure: GatewayError | None = None) -> None:
        """Build the paired record and hand a job to every sampled shadow; ``failure``: the
        answering model failed (the record says so, and the shadows still run)."""
        models = snap.models.by_ref
        # Literals, not helper calls: this runs once per request.
        predictions: list[Prediction] = [{
            "role": rt.variant, "model": backend.name, "version": backend.version,
            "served": True, "status": "ok", "latency_ms": round(elapsed * 1000, 4),
            "error": None, "output": output_json(backend, outputs)} if outputs is not None else {
            "role": rt.variant, "model": backend.name, "version": backend.version,
            "served": True, "status": "timeout" if failure and failure.status_code == 504
            else "error", "latency_ms": round(elapsed * 1000, 4),
            "error": failure.message if failure else None, "output": None}]
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
        record = new_record(call.request_id, ts, spec.name, snap.revision, rt.key_hash,
                            rt.bucket, rt.variant, request.rows, predictions, inputs,
                            request.id)
        pending = PendingRecord(record, self.sink, len(rt.shadows))
        same, workers = snap.same_inputs, snap.workers
        for slot, shadow in enumerate(rt.shadows, start=1):
            checked = request.finite and (rt.primary, shadow.model) in same
            workers[shadow.model].submit(Job(request.inputs, request.rows, pending, slot,
                                             shadow.timeout_s, checked, request.id))


def _check_outputs(backend: Backend, wanted: list[str],
                   outputs: Mapping[str, Array] | None = None) -> None:
    """Refuse unknown output names before the model runs (no record for a refused request);
    a model whose outputs are known only from its answer is checked against that."""
    have = backend.signature.output_names if outputs is None else outputs.keys()
    unknown = [n for n in wanted if n not in have]
    if unknown:
        raise BadRequest(f"outputs: unknown output(s) {unknown}; model {backend.name!r} has "
                         f"{sorted(have)}")


def _select(request: InferenceRequest, outputs: dict[str, Array]) -> dict[str, Array]:
    """The outputs the caller asked for (all by default; names checked by _check_outputs)."""
    if request.outputs is None:
        return outputs
    return {n: outputs[n] for n in request.outputs}
