"""Rollouts end to end: the real gateway, a real Redis, an injected clock.

A good candidate goes from shadow through two canary stages to promotion; bad ones are rolled
back by the gate that catches them, with its value and bound in the recorded history: one that
flips 10% of the labels (accuracy, in the shadow stage), one that fails 5% of its calls (error
rate, in the shadow stage), one twice as slow (p99 latency, once it answers users as a canary
and enough of its answers are in to tell).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.rollout import store
from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.backends import TIMER
from tests.helpers import config, loaded
from tests.redis_fixture import RedisServer

pytestmark = pytest.mark.slow

STAGES = [
    {"kind": "shadow", "min_duration_s": 60, "min_samples": 200},
    {"kind": "canary", "weight": 40, "min_duration_s": 60, "min_samples": 300},
    {"kind": "canary", "weight": 70, "min_duration_s": 60, "min_samples": 300},
    {"kind": "promote"},
]
# Latencies are measured on tests.backends.TIMER, which only the models move: each call of the
# champion and of a candidate costs 1 ms, of the slow one 2 ms, however busy the machine is.
MODES = {"good": {"mode": "copy"}, "flipper": {"mode": "flip", "share": 0.1},
         "failing": {"mode": "fail", "share": 0.05, "seed": 3}, "slow": {"mode": "slow"}}
CHAMPION = {"name": "bc-logreg", "python": "tests.backends:variant",
            "options": {"mode": "copy", "cost_ms": 1}}


class Clock:
    """Wall time plus a shift the test moves forward."""

    def __init__(self) -> None:
        import time

        self.time = time.time
        self.shift = 0.0

    def __call__(self) -> float:
        return self.time() + self.shift


@dataclass
class Gateway:
    client: TestClient
    runtime: Runtime
    clock: Clock
    holdout: list[dict[str, Any]]
    sent: int = 0

    def traffic(self, requests: int) -> None:
        """Requests from many users, each labelled right away."""
        items = []
        for _ in range(requests):
            n = self.sent
            self.sent += 1
            row = self.holdout[n % len(self.holdout)]
            rid = f"r{n}"
            r = self.client.post("/predict", json={"instances": [row["features"]]},
                                 headers={"x-request-id": rid, "x-user-id": f"user-{n}"})
            if r.status_code == 200:
                items.append({"request_id": rid, "label": row["label_name"]})
        assert self.client.post("/feedback", json={"items": items}).status_code == 200

    def evaluate(self) -> Any:
        controller = self.runtime.controller
        assert controller is not None
        return self.client.portal.call(controller.run_once)  # type: ignore[union-attr]


@pytest.fixture
def gateway_for(redis_server: RedisServer, holdout: list[dict[str, Any]], tmp_path: Path
                ) -> Iterator[Any]:
    opened: list[TestClient] = []

    def start(candidate: str) -> Gateway:
        models = [CHAMPION, {"name": candidate, "python": "tests.backends:variant",
                             "options": {**MODES[candidate], "cost_ms": 1}}]
        data = loaded(config([{
            "name": "breast-cancer", "champion": "bc-logreg",
            "routing": {"header": "x-user-id"},
            "guardrails": {"min_pairs": 100, "min_labels": 100, "max_accuracy_drop": 0.02,
                           "max_p99_latency_ratio": 1.3},
            "rollout": {"candidate": candidate, "stages": STAGES, "evaluate_every_s": 1,
                        "label_wait_s": 0},
        }], models=models))
        clock = Clock()
        settings = Settings(redis_url=redis_server.url, state_dir=tmp_path / candidate,
                            rollout_controller=False, watch_config=False)
        client = TestClient(create_app(settings, loaded=data, clock=clock, timer=TIMER))
        client.__enter__()
        opened.append(client)
        return Gateway(client, client.app.state.runtime, clock, holdout)  # type: ignore[attr-defined]

    yield start
    for client in opened:
        client.__exit__(None, None, None)


def run(gw: Gateway, rounds: int = 12, requests: int = 1000) -> list[Any]:
    """Traffic, then the clock past the stage's minimum, then one evaluation; repeated until
    the rollout ends."""
    first = gw.evaluate()  # the first look starts the rollout: nothing to judge yet
    assert [d.action for d in first] == ["hold"] and "0 s in shadow" in first[0].summary
    decisions = []
    for _ in range(rounds):
        gw.traffic(requests)
        gw.clock.shift += 61
        decisions.extend(gw.evaluate())
        if decisions and decisions[-1].action in ("promote", "rollback"):
            break
    return decisions


async def recorded(url: str) -> list[dict[str, Any]]:
    redis = Redis.from_url(url)
    try:
        return await store.history(redis, "breast-cancer")
    finally:
        await redis.aclose()


def test_a_good_candidate_is_promoted_stage_by_stage(gateway_for: Any,
                                                     redis_server: RedisServer) -> None:
    gw = gateway_for("good")
    decisions = run(gw)
    assert [d.action for d in decisions] == ["advance", "advance", "promote"], [
        d.summary for d in decisions]
    history = asyncio.run(recorded(redis_server.url))
    assert [h["action"] for h in history] == ["start", "hold", "advance", "advance", "promote"]
    assert history[-1]["status"] == "promoted"
    for entry in history[2:]:
        assert all(g["result"] in ("pass", "info") for g in entry["gates"]), entry
    # Promotion serves the candidate as the champion, at once, on this replica.
    r = gw.client.post("/predict", json={"instances": [gw.holdout[0]["features"]]})
    assert r.headers["x-shadowgate-model"] == "good"


@pytest.mark.parametrize(("candidate", "gate", "stage"), [
    ("flipper", "accuracy", "shadow"),
    ("failing", "error_rate", "shadow"),
    ("slow", "latency_p99", "canary"),  # at 40% or 70%, as its answers pile up
])
def test_a_bad_candidate_is_rolled_back_by_its_gate(gateway_for: Any, redis_server: RedisServer,
                                                    candidate: str, gate: str,
                                                    stage: str) -> None:
    gw = gateway_for(candidate)
    decisions = run(gw)
    assert decisions[-1].action == "rollback", [d.summary for d in decisions]
    history = asyncio.run(recorded(redis_server.url))
    last = history[-1]
    assert last["action"] == "rollback" and last["status"] == "rolled_back"
    assert last["stage_name"].startswith(stage)
    failed = [g for g in last["gates"] if g["result"] == "fail"]
    assert [g["name"] for g in failed][:1] == [gate]
    assert failed[0]["measured"] is not None and failed[0]["bound"] is not None
    assert gate in last["summary"] and "bound" in last["summary"]
    # Rolled back: the champion alone answers, and the candidate is no longer a shadow.
    r = gw.client.post("/predict", json={"instances": [gw.holdout[0]["features"]]},
                       headers={"x-user-id": "someone"})
    assert r.headers["x-shadowgate-model"] == "bc-logreg"
    snapshot = gw.runtime.serving.snapshot
    assert f"{candidate}:1" not in snapshot.workers
