"""A rollout's runtime state and the routing it implies.

The config file is the desired plan; where the rollout stands (stage, since when, paused,
rolled back, promoted) lives in Redis (``sg:{deployment}:rollout``), so it survives restarts
and every replica routes by it. ``effective`` turns the configured deployment plus that state
into the deployment that is actually served: the candidate as a shadow, as a canary at the
stage's weight, as the champion once promoted, or gone after a rollback.

A state belongs to one plan (``plan_id``: a hash of the rollout section and the champion): an
edited plan starts a new rollout from its first stage.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import orjson

from gateway.config.schema import CanarySpec, DeploymentSpec, ShadowSpec

Status = Literal["running", "paused", "waiting", "rolled_back", "promoted"]
FINAL: frozenset[str] = frozenset({"rolled_back", "promoted"})


@dataclass(frozen=True)
class RolloutState:
    """Where a deployment's rollout stands; ``version`` rises with every change."""

    plan_id: str
    candidate: str  # model ref "name:version"
    stage: int  # index into the plan's stages
    stage_started: float  # Unix seconds
    status: Status = "running"
    champion: str = ""  # the serving champion's ref (the candidate's, once promoted)
    version: int = 0
    updated: float = 0.0
    reason: str = ""  # why the status last changed
    start_id: str = "0-0"  # the pairs stream's last id when the stage began

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> RolloutState:
        data: dict[str, Any] = orjson.loads(raw)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def moved(self, now: float, **changes: Any) -> RolloutState:
        """A new version of this state (stage, status, ...) as of ``now``."""
        return replace(self, **changes, version=self.version + 1, updated=now)


def plan_id(spec: DeploymentSpec) -> str:
    """Identifies a rollout plan: the rollout section and the champion it starts from."""
    assert spec.rollout is not None
    raw = orjson.dumps({"rollout": spec.rollout.model_dump(mode="json"),
                        "champion": spec.champion}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()[:16]


def initial(spec: DeploymentSpec, candidate: str, champion: str, now: float,
            start_id: str = "0-0") -> RolloutState:
    return RolloutState(plan_id(spec), candidate, 0, now, "running", champion, 1, now,
                        "rollout started", start_id)


def effective(spec: DeploymentSpec, state: RolloutState | None) -> DeploymentSpec:
    """The deployment as served, given its rollout's state (None: not started yet, which
    serves the first stage as well)."""
    rollout = spec.rollout
    if rollout is None:
        return spec
    candidate = rollout.candidate
    if state is not None and state.plan_id != plan_id(spec):
        state = None  # a state of an older plan: the new plan starts over
    if state is not None and state.status == "rolled_back":
        return spec
    if state is not None and state.status == "promoted":
        return spec.model_copy(update={"champion": candidate})
    stage = rollout.stages[state.stage if state is not None else 0]
    if stage.kind == "shadow":
        return spec.model_copy(update={"shadows": [*spec.shadows, ShadowSpec(model=candidate)]})
    if stage.kind == "canary":
        assert stage.weight is not None
        return spec.model_copy(update={"canaries": [
            *spec.canaries, CanarySpec(model=candidate, weight=stage.weight)]})
    return spec.model_copy(update={"champion": candidate})  # the promote stage
