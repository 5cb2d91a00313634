"""The rollout controller: evaluates each deployment's rollout and acts, one replica at a time.

Every replica runs one, but only the holder of the lock (gateway/rollout/store.py) acts; the
others only watch. ``run_once`` is one evaluation of every deployment that has a rollout:
catch up on the stage's records, decide (gateway/rollout/decide.py), move the state in Redis
(unless ``dry_run``), record the decision with every gate's value and bound, count it in
metrics and post it to the webhook. Manual actions (pause, resume, promote, roll back) go
through ``act`` and are recorded the same way, with who and why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Literal

from redis.asyncio import Redis

from gateway.config.load import LoadedConfig, resolve_ref
from gateway.config.schema import DeploymentSpec, GuardrailSpec
from gateway.metrics import Metrics
from gateway.rollout import store
from gateway.rollout.decide import Decision, decide
from gateway.rollout.evidence import StageEvidence
from gateway.rollout.state import FINAL, RolloutState, effective, initial, plan_id
from gateway.rollout.webhook import Webhook

log = logging.getLogger(__name__)

Manual = Literal["pause", "resume", "promote", "rollback"]
HOLD_RECORD_EVERY_S = 300.0
OnChange = Callable[[str, RolloutState], Awaitable[None]]


class ActionRefused(Exception):
    """A manual action that does not apply to the rollout's current status."""


class RolloutController:
    """Evaluates and moves every rollout of the current config."""

    def __init__(self, redis: Redis, config: Callable[[], LoadedConfig], metrics: Metrics, *,
                 owner: str, lock_ttl_s: float = 10.0, clock: Callable[[], float] = time.time,
                 on_change: OnChange | None = None, webhook: Webhook | None = None) -> None:
        self.redis = redis
        self.config = config
        self.metrics = metrics
        self.lock = store.LeaderLock(redis, owner, lock_ttl_s)
        self.clock = clock
        self.on_change = on_change
        self.webhook = webhook
        self._evidence: dict[str, tuple[tuple[str, int, float], StageEvidence]] = {}
        self._last_eval: dict[str, float] = {}
        self._last_hold: dict[str, tuple[str, float]] = {}

    async def run_once(self) -> list[Decision]:
        """One evaluation of every rollout, if this replica holds the lock."""
        if not await self.lock.acquire():
            self._evidence.clear()  # another replica acts; start afresh if this one takes over
            return []
        loaded = self.config()
        decisions = []
        for spec in loaded.config.deployments:
            if spec.rollout is None:
                continue
            try:
                decision = await self._evaluate(loaded, spec)
            except Exception:  # one deployment's trouble must not stop the others
                log.exception("rollout of %s: evaluation failed", spec.name)
                continue
            if decision is not None:
                decisions.append(decision)
        return decisions

    async def _evaluate(self, loaded: LoadedConfig, spec: DeploymentSpec) -> Decision | None:
        assert spec.rollout is not None
        now = self.clock()
        state = await self._state(loaded, spec, now)
        self._gauge(spec, state)
        if state.status in FINAL or state.status in ("paused", "waiting"):
            return None
        if now - self._last_eval.get(spec.name, -1e18) < spec.rollout.evaluate_every_s:
            return None
        self._last_eval[spec.name] = now
        evidence = self._stage_evidence(loaded, spec, state)
        await evidence.catch_up(self.redis, now)
        decision = decide(spec.rollout, state.stage, now - state.stage_started,
                          evidence.samples, evidence.checks())
        await self._apply(spec, state, decision, now, by="controller", reason="")
        return decision

    async def _state(self, loaded: LoadedConfig, spec: DeploymentSpec, now: float
                     ) -> RolloutState:
        state = await store.load_state(self.redis, spec.name)
        if state is not None and state.plan_id == plan_id(spec):
            return state
        assert spec.rollout is not None
        candidate = _ref(loaded, spec.rollout.candidate)
        start = await store.stream_end(self.redis, spec.name)
        fresh = initial(spec, candidate, _ref(loaded, spec.champion), now, start)
        if state is not None:  # an older plan's state: versions keep rising
            fresh = replace(fresh, version=state.version + 1)
        if await store.save_state(self.redis, spec.name, fresh,
                                  0 if state is None else state.version):
            await self._record(spec, fresh, {"action": "start", "by": "controller",
                                             "summary": f"Rollout of {candidate} started in "
                                             f"{spec.rollout.stages[0].label}."})
            await self._changed(spec.name, fresh)
            return fresh
        reread = await store.load_state(self.redis, spec.name)
        return reread if reread is not None else fresh

    def _stage_evidence(self, loaded: LoadedConfig, spec: DeploymentSpec,
                        state: RolloutState) -> StageEvidence:
        assert spec.rollout is not None
        key = (state.plan_id, state.stage, state.stage_started)
        cached = self._evidence.get(spec.name)
        if cached is not None and cached[0] == key:
            return cached[1]
        stage = spec.rollout.stages[state.stage]
        served = effective(spec, state)
        if stage.gates:
            served = served.model_copy(update={"guardrails": GuardrailSpec.model_validate(
                {**spec.guardrails.model_dump(), **stage.gates})})
        evidence = StageEvidence(loaded, served, state.candidate, state.stage_started,
                                 spec.rollout.label_wait_s, state.start_id)
        self._evidence[spec.name] = (key, evidence)
        return evidence

    async def _apply(self, spec: DeploymentSpec, state: RolloutState, decision: Decision,
                     now: float, *, by: str, reason: str) -> None:
        assert spec.rollout is not None
        dry = spec.rollout.dry_run
        moved: RolloutState | None = None
        if decision.action == "advance":
            moved = state.moved(now, stage=state.stage + 1, stage_started=now,
                                start_id=await store.stream_end(self.redis, spec.name),
                                reason=decision.summary)
        elif decision.action == "promote":
            moved = state.moved(now, status="promoted", champion=state.candidate,
                                reason=decision.summary)
        elif decision.action == "rollback":
            moved = state.moved(now, status="rolled_back", reason=decision.summary)
        elif decision.action == "wait":
            moved = state.moved(now, status="waiting", reason=decision.summary)
        self.metrics.rollout_decisions.labels(
            spec.name, decision.action,
            decision.failing.name if decision.failing is not None else "").inc()
        if decision.action == "hold":
            # A hold for the same reason is counted every time but recorded once (and again
            # every few minutes), so the history stays readable.
            held = next((g.name for g in decision.gates if g.result == "hold"), "")
            key = f"{decision.stage}:{held}"
            last = self._last_hold.get(spec.name)
            if last is not None and last[0] == key and now - last[1] < HOLD_RECORD_EVERY_S:
                return
            self._last_hold[spec.name] = (key, now)
        else:
            self._last_hold.pop(spec.name, None)
        entry = {"action": decision.action, "by": by, "reason": reason, "dry_run": dry,
                 "stage": decision.stage, "stage_name": decision.stage_name,
                 "summary": decision.summary,
                 "gates": [g.model_dump() for g in decision.gates]}
        if moved is not None and not dry:
            if not await store.save_state(self.redis, spec.name, moved, state.version):
                log.warning("rollout of %s: state changed under us; decision not applied",
                            spec.name)
                return
            state = moved
            await self._changed(spec.name, moved)
        await self._record(spec, state, entry)

    async def act(self, loaded: LoadedConfig, deployment: str, action: Manual, *, by: str,
                  reason: str) -> RolloutState:
        """A person's action on a rollout (the admin API): recorded with who and why."""
        spec = next((d for d in loaded.config.deployments if d.name == deployment), None)
        if spec is None or spec.rollout is None:
            raise KeyError(f"deployment {deployment!r} has no rollout in the config")
        now = self.clock()
        state = await self._state(loaded, spec, now)
        if action == "pause":
            if state.status != "running":
                raise ActionRefused(f"cannot pause a rollout that is {state.status}")
            moved = state.moved(now, status="paused", reason=reason)
        elif action == "resume":
            if state.status not in ("paused", "waiting"):
                raise ActionRefused(f"cannot resume a rollout that is {state.status}")
            moved = state.moved(now, status="running", reason=reason)
        elif action == "promote":
            if state.status in FINAL:
                raise ActionRefused(f"the rollout is already {state.status.replace('_', ' ')}")
            moved = state.moved(now, status="promoted", champion=state.candidate, reason=reason)
        else:
            if state.status in FINAL:
                raise ActionRefused(f"the rollout is already {state.status.replace('_', ' ')}")
            moved = state.moved(now, status="rolled_back", reason=reason)
        if not await store.save_state(self.redis, deployment, moved, state.version):
            raise ActionRefused("the rollout changed at the same moment; try again")
        self.metrics.rollout_decisions.labels(deployment, action, "manual").inc()
        await self._record(spec, moved, {
            "action": action, "by": by, "reason": reason, "manual": True, "dry_run": False,
            "stage": state.stage, "stage_name": spec.rollout.stages[state.stage].label,
            "summary": f"{action} by {by}: {reason}", "gates": []})
        await self._changed(deployment, moved)
        return moved

    async def _record(self, spec: DeploymentSpec, state: RolloutState,
                      entry: dict[str, Any]) -> None:
        entry = {"ts": self.clock(), "deployment": spec.name, "candidate": state.candidate,
                 "status": state.status, "state_version": state.version,
                 "replica": self.lock.owner, **entry}
        await store.record(self.redis, spec.name, entry)
        log.info("rollout of %s: %s", spec.name, entry["summary"])
        if self.webhook is not None and spec.rollout is not None and spec.rollout.webhook:
            await self.webhook.post(spec.rollout.webhook, entry)

    async def _changed(self, deployment: str, state: RolloutState) -> None:
        if self.on_change is not None:
            await self.on_change(deployment, state)

    def _gauge(self, spec: DeploymentSpec, state: RolloutState) -> None:
        assert spec.rollout is not None
        value = {"rolled_back": -1.0, "promoted": float(len(spec.rollout.stages))}.get(
            state.status, float(state.stage))
        self.metrics.rollout_stage.labels(spec.name, state.candidate).set(value)

    async def close(self) -> None:
        await self.lock.release()


def _ref(loaded: LoadedConfig, name: str) -> str:
    spec = resolve_ref(name, loaded.config.models)
    return spec.ref if spec is not None else name

