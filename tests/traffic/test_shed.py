"""Shadows beyond the CPU budget are shed: recorded as such, counted, and never queued."""

from __future__ import annotations

import asyncio

import numpy as np

from gateway.backends.budget import CpuBudget
from gateway.backends.onnx import OnnxBackend
from gateway.metrics import Metrics
from gateway.predlog.record import PairedRecord, Prediction, Role
from gateway.predlog.sink import MemorySink
from gateway.traffic.mirror import Job, ShadowWorker
from gateway.traffic.pairing import PendingRecord
from tests.backends import Fake
from tests.helpers import MODELS, config, harness


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def entry(role: Role, served: bool) -> Prediction:
    return {"role": role, "model": "bc-rf", "version": "1", "served": served,
            "status": "dropped", "latency_ms": None, "error": None, "output": None}


def submit(worker: ShadowWorker, sink: MemorySink, n: int, start: int = 0) -> None:
    rows = np.random.default_rng(start).random((n, 30), dtype=np.float32)
    for i in range(n):
        record = PairedRecord(v=1, request_id=f"r{start + i}", ts=0.0, deployment="d",
                              revision="x", key_hash=None, bucket=0, variant="champion",
                              rows=1, predictions=[entry("champion", True),
                                                   entry("shadow", False)], inputs=None)
        worker.submit(Job({"input": rows[i:i + 1]}, 1, PendingRecord(record, sink, 1), 1, 1.0,
                          checked=True))


def shed_count(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("shadowgate_shadow_dropped_total", {
        "model_name": "bc-rf", "model_version": "1", "reason": "shed"}) or 0.0


async def test_batches_over_the_budget_are_shed_and_recorded() -> None:
    backend = OnnxBackend("bc-rf", "1", MODELS / "bc-rf" / "1")
    backend.warmup()
    clock, metrics, sink = Clock(), Metrics(), MemorySink()
    budget = CpuBudget(0.5, window_s=0.2, clock=clock)
    worker = ShadowWorker(backend, metrics, queue_size=100, max_batch=4, max_wait_s=0,
                          budget=budget)
    submit(worker, sink, 4)
    assert await worker.run_once() == 4  # within the budget: runs, and is charged
    assert budget.spent_s > 0
    budget.charge(1.0)  # as if a heavy batch had just run
    submit(worker, sink, 8, start=4)
    assert await worker.run_once() == 8  # both batches shed: the queue does not grow
    assert worker.queue.empty()
    statuses = {r["request_id"]: r["predictions"][1] for r in sink.records}
    assert [statuses[f"r{i}"]["status"] for i in range(12)] == ["ok"] * 4 + ["shed"] * 8
    shed = statuses["r5"]
    assert shed["latency_ms"] is None and shed["output"] is None
    assert "budget" in shed["error"]
    assert shed_count(metrics) == 8
    clock.now += 3.0  # the debt is paid back: shadows run again
    submit(worker, sink, 2, start=12)
    await worker.run_once()
    assert {r["predictions"][1]["status"] for r in sink.records[-2:]} == {"ok"}
    await backend.close()


async def test_a_backend_that_reports_no_cost_runs_outside_the_budget() -> None:
    # A remote model's CPU is the remote's: an empty budget does not shed it.
    metrics, sink = Metrics(), MemorySink()
    budget = CpuBudget(0.5)
    budget.charge(100.0)
    worker = ShadowWorker(Fake("bc-rf", "1", {}), metrics, queue_size=10, max_batch=4,
                          max_wait_s=0, budget=budget)
    assert worker.budget is None
    submit(worker, sink, 2)
    await worker.run_once()
    assert {r["predictions"][1]["status"] for r in sink.records} == {"ok"}
    assert shed_count(metrics) == 0


async def test_a_batch_goes_as_soon_as_it_is_full() -> None:
    # A long max_wait costs nothing at high traffic: a full batch does not wait for it.
    backend = OnnxBackend("bc-rf", "1", MODELS / "bc-rf" / "1")
    backend.warmup()
    sink = MemorySink()
    worker = ShadowWorker(backend, Metrics(), queue_size=100, max_batch=4, max_wait_s=3600)
    submit(worker, sink, 1)
    step = asyncio.create_task(worker.run_once())
    await asyncio.sleep(0)  # the worker holds the first job and gathers
    submit(worker, sink, 3, start=1)
    assert await asyncio.wait_for(step, 10) == 4
    await backend.close()


def test_shed_shadows_reach_the_record_through_the_app(holdout: list[dict]) -> None:
    # A budget so small that after the first batch everything is shed for a long while.
    models = [{"name": n, "version": "1"} for n in ("bc-logreg", "bc-rf")]
    data = config([{"name": "breast-cancer", "champion": "bc-logreg",
                    "shadows": [{"model": "bc-rf", "sample_percent": 100}]}], models=models,
                  mirror={"cpu_budget": 0.000001, "max_wait_ms": 0, "isolation": "inline"})
    with harness(data) as h:
        for _ in range(20):
            assert h.client.post("/predict", json={"instances": [holdout[0]["features"]]}
                                 ).status_code == 200
        h.wait_records(20)
        statuses = [r["predictions"][1]["status"] for r in h.sink.records]
        assert set(statuses) <= {"ok", "shed"} and statuses.count("shed") >= 18
        assert h.metric("shadowgate_shadow_dropped_total", model_name="bc-rf",
                        model_version="1", reason="shed") == statuses.count("shed")
