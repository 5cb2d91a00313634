"""One immutable view of what is served: models, deployments, routing plans, metric children.

A config change builds a new Snapshot and swaps it in whole; requests in flight finish on
the one they started with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.backends.base import Backend
from gateway.backends.registry import ModelSet
from gateway.config.load import LoadedConfig, resolve_ref
from gateway.config.schema import DeploymentSpec
from gateway.inferstats import ModelStats
from gateway.metrics import Metrics, ModelMetrics
from gateway.traffic.live import DecisionRule
from gateway.traffic.mirror import ShadowWorker
from gateway.traffic.router import DeploymentPlan, ShadowPlan


@dataclass(frozen=True)
class Deployment:
    spec: DeploymentSpec
    plan: DeploymentPlan
    champion: Backend
    stats: ModelStats  # Triton's statistics of the deployment itself (version "")


@dataclass(frozen=True)
class Snapshot:
    loaded: LoadedConfig
    models: ModelSet
    deployments: dict[str, Deployment]
    model_metrics: dict[str, ModelMetrics] = field(default_factory=dict)
    # (model ref, model ref) pairs whose input signatures are the same: inputs validated for
    # the first need no second validation for the second (a shadow's micro-batch).
    same_inputs: frozenset[tuple[str, str]] = frozenset()
    workers: dict[str, ShadowWorker] = field(default_factory=dict)  # model ref -> its worker

    @property
    def revision(self) -> str:
        return self.loaded.revision

    @property
    def default_deployment(self) -> str | None:
        configured = self.loaded.config.server.default_deployment
        if configured is not None:
            return configured
        return next(iter(self.deployments)) if len(self.deployments) == 1 else None

    def shadow_refs(self) -> set[str]:
        """Every model that may run as a shadow (champions too, when a canary answers)."""
        refs: set[str] = set()
        for dep in self.deployments.values():
            refs.update(s.model for s in dep.plan.shadows)
            if dep.plan.canaries:
                refs.add(dep.plan.champion)
        return refs


def build_snapshot(loaded: LoadedConfig, models: ModelSet, metrics: Metrics) -> Snapshot:
    config = loaded.config

    def ref(name: str) -> str:
        spec = resolve_ref(name, config.models)
        assert spec is not None, "load.validate checked every reference"
        return spec.ref

    deployments = {}
    for spec in config.deployments:
        shadows = tuple(ShadowPlan(ref(s.model), s.sample_percent, s.timeout_ms / 1000)
                        for s in spec.shadows)
        plan = DeploymentPlan.build(spec.name, spec.routing.salt or spec.name, ref(spec.champion),
                                    [(ref(c.model), c.weight) for c in spec.canaries], shadows)
        deployments[spec.name] = Deployment(spec, plan, models.by_ref[plan.champion],
                                            metrics.stats(spec.name, ""))
    model_metrics = {r: metrics.model(b.name, b.version) for r, b in models.by_ref.items()}
    same_inputs = frozenset((a, b) for a, x in models.by_ref.items()
                            for b, y in models.by_ref.items()
                            if x.signature.inputs == y.signature.inputs
                            and x.signature.inputs_known == y.signature.inputs_known)
    return Snapshot(loaded, models, deployments, model_metrics, same_inputs)


def decision_rules(snapshot: Snapshot) -> dict[str, DecisionRule]:
    """Per deployment, the decision its champion's answers drive (for live flip counts)."""
    rules = {}
    for name, dep in snapshot.deployments.items():
        decision = dep.spec.decision
        rules[name] = DecisionRule(decision.positive_class if decision else None,
                                   decision.threshold if decision else None)
    return rules
