"""A deployment's rollout as a section of the comparison report."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from gateway.analysis.document import Check, Report, Rollout, RolloutDecision
from gateway.config.load import LoadedConfig
from gateway.rollout import store
from gateway.rollout.state import plan_id

SHOWN = 50  # decisions in a report (the admin API has them all)


async def with_rollout(report: Report, loaded: LoadedConfig, redis: Redis) -> Report:
    """``report`` with its deployment's rollout (state and latest decisions) when it has one."""
    spec = next((d for d in loaded.config.deployments if d.name == report.deployment), None)
    if spec is None or spec.rollout is None:
        return report
    state = await store.load_state(redis, spec.name)
    if state is not None and state.plan_id != plan_id(spec):
        state = None
    stages = [s.label for s in spec.rollout.stages]
    history = await store.history(redis, spec.name, SHOWN)
    section = Rollout(
        candidate=spec.rollout.candidate if state is None else state.candidate,
        status="not started" if state is None else state.status,
        stage=None if state is None else stages[state.stage],
        stages=stages, decisions=[_decision(h) for h in history])
    return report.model_copy(update={"rollout": section})


def _decision(entry: dict[str, Any]) -> RolloutDecision:
    return RolloutDecision(
        ts=float(entry.get("ts", 0.0)), action=str(entry.get("action", "")),
        stage=entry.get("stage_name"), by=str(entry.get("by", "")),
        summary=str(entry.get("summary", "")), dry_run=bool(entry.get("dry_run", False)),
        gates=[Check.model_validate(g) for g in entry.get("gates") or ()])
