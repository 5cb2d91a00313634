"""Pure routing: deployment plan + routing key -> which model answers and which shadow.

Canaries own consecutive bucket ranges from 0 in config order, so raising a canary's
weight only moves users from the champion to that canary (with one canary, never back).
On a request answered by a canary, the champion runs as a shadow, so every request is
paired with a champion answer.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.predlog.record import Role, Variant
from gateway.traffic.hashing import BUCKETS, bucket_of, key_digest


@dataclass(frozen=True, slots=True)
class ShadowPlan:
    model: str  # model ref "name:version"
    sample_percent: float
    timeout_s: float


@dataclass(frozen=True, slots=True)
class CanaryPlan:
    model: str
    lo: int  # first bucket owned
    hi: int  # one past the last bucket owned


@dataclass(frozen=True, slots=True)
class ShadowCall:
    model: str
    role: Role
    timeout_s: float


@dataclass(frozen=True)
class DeploymentPlan:
    """One deployment's routing, resolved to model refs."""

    name: str
    salt: str
    champion: str
    canaries: tuple[CanaryPlan, ...]
    shadows: tuple[ShadowPlan, ...]
    champion_timeout_s: float = 1.0
    # Shadow calls when every shadow samples 100% (the usual case), built once: (answered by
    # the champion, answered by a canary). None: sampling is drawn per request.
    always: tuple[tuple[ShadowCall, ...], tuple[ShadowCall, ...]] | None = field(
        init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        always = None
        if all(s.sample_percent >= 100 for s in self.shadows):
            calls = tuple(ShadowCall(s.model, "shadow", s.timeout_s) for s in self.shadows)
            champion = ShadowCall(self.champion, "champion", self.champion_timeout_s)
            always = (calls, (champion, *calls))
        object.__setattr__(self, "always", always)

    @classmethod
    def build(cls, name: str, salt: str, champion: str,
              canaries: list[tuple[str, float]], shadows: tuple[ShadowPlan, ...],
              champion_timeout_s: float = 1.0) -> DeploymentPlan:
        plans, start = [], 0
        for model, weight in canaries:
            width = round(weight * BUCKETS / 100)
            plans.append(CanaryPlan(model, start, start + width))
            start += width
        return cls(name, salt, champion, tuple(plans), shadows, champion_timeout_s)


@dataclass(frozen=True, slots=True)
class Route:
    variant: Variant
    primary: str
    bucket: int
    key_hash: str | None
    shadows: tuple[ShadowCall, ...]


def route(plan: DeploymentPlan, key: str | None, forced: str | None = None,
          rand: Callable[[], float] = random.random) -> Route:
    """Decide who answers; ``forced`` is 'champion', 'canary' or a model ref/name."""
    if key is None:
        bucket, key_hash = int(rand() * BUCKETS) % BUCKETS, None
    else:
        digest = key_digest(plan.salt, plan.name, key)
        bucket, key_hash = bucket_of(digest), digest.hex()
    primary = plan.champion
    if forced is not None:
        primary = _forced(plan, forced)
    else:
        for canary in plan.canaries:
            if canary.lo <= bucket < canary.hi:
                primary = canary.model
                break
    variant: Variant = "champion" if primary == plan.champion else "canary"
    if plan.always is not None:
        return Route(variant, primary, bucket, key_hash, plan.always[variant == "canary"])
    shadows: list[ShadowCall] = []
    if variant == "canary":
        shadows.append(ShadowCall(plan.champion, "champion", plan.champion_timeout_s))
    for shadow in plan.shadows:
        if shadow.sample_percent >= 100 or rand() * 100 < shadow.sample_percent:
            shadows.append(ShadowCall(shadow.model, "shadow", shadow.timeout_s))
    return Route(variant, primary, bucket, key_hash, tuple(shadows))


def _forced(plan: DeploymentPlan, forced: str) -> str:
    if forced == "champion":
        return plan.champion
    if forced == "canary" and plan.canaries:
        return plan.canaries[0].model
    for canary in plan.canaries:
        if forced in (canary.model, canary.model.partition(":")[0]):
            return canary.model
    raise LookupError(forced)
