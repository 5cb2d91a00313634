"""What a report computes for one deployment: champion, classes, features, segments.

Resolved from the config and the champion's model card before the pass over the records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from gateway.analysis.ab import ABAccumulator
from gateway.analysis.decode import Layout
from gateway.analysis.drift import Reference, references
from gateway.analysis.paired import PairAccumulator
from gateway.backends.card import CARD_FILE
from gateway.config.load import LoadedConfig, resolve_ref
from gateway.config.schema import DeploymentSpec


@dataclass
class Plan:
    """What the pass computes for one deployment."""

    spec: DeploymentSpec
    champion: str  # "name:version"
    layout: Layout
    positive: int
    refs: list[Reference]
    canary_weights: dict[str, float]
    segment_by: str
    segment_edges: np.ndarray | None
    segment_feature: int | None
    segment_labels: list[str]
    only: str | None = None  # report on this candidate only
    pairs: dict[str, PairAccumulator] = field(default_factory=dict)
    abs: dict[str, ABAccumulator] = field(default_factory=dict)


def card_of(loaded: LoadedConfig, ref: str) -> dict[str, Any]:
    """The model card of a configured model (empty when it has none)."""
    spec = resolve_ref(ref, loaded.config.models)
    if spec is None:
        return {}
    card_path = getattr(spec, "card", None)
    path = (loaded.path.parent / card_path if card_path and loaded.path else
            loaded.model_dir(spec) / CARD_FILE)
    try:
        data = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def plan_for(loaded: LoadedConfig, deployment: str, candidate: str | None = None,
             spec: DeploymentSpec | None = None) -> Plan:
    """Resolve the deployment's champion, classes, features, segments; raises KeyError.

    ``spec``: the deployment as served when it differs from the file (a rollout's stage)."""
    if spec is None:
        spec = next((d for d in loaded.config.deployments if d.name == deployment), None)
    if spec is None:
        names = [d.name for d in loaded.config.deployments]
        raise KeyError(f"deployment {deployment!r} is not in the config; deployments: {names}")
    model = resolve_ref(spec.champion, loaded.config.models)
    assert model is not None, "the config loader checked every reference"
    champion = model.ref
    card = card_of(loaded, champion)
    classes = tuple(str(c) for c in card.get("class_labels") or ())
    refs = references(card)
    layout = Layout(classes, len(refs), tuple(o.name for o in spec.outcomes))
    positive = 1 if len(classes) == 2 else 0
    if spec.decision is not None and spec.decision.positive_class in classes:
        positive = classes.index(spec.decision.positive_class)
    canary_weights = {}
    for c in spec.canaries:
        ref = resolve_ref(c.model, loaded.config.models)
        if ref is not None:
            canary_weights[ref.ref] = c.weight
    by, edges, feature, labels = _segments(spec, refs, classes)
    if candidate is not None and ":" not in candidate:
        found = resolve_ref(candidate, loaded.config.models)
        candidate = found.ref if found is not None else f"{candidate}:1"
    return Plan(spec, champion, layout, positive, refs, canary_weights, by, edges, feature,
                labels, candidate)


def _segments(spec: DeploymentSpec, refs: list[Reference], classes: tuple[str, ...]
              ) -> tuple[str, np.ndarray | None, int | None, list[str]]:
    names = [r.feature for r in refs]
    for seg in spec.segments:
        if seg.feature in names:
            j = names.index(seg.feature)
            ref = refs[j]
            if ref.edges.size:
                picks = np.unique(np.round(np.linspace(0, len(ref.edges) - 1, seg.bins + 1))
                                  .astype(int))
                edges = ref.edges[picks].astype(np.float64)
                edges[0], edges[-1] = -np.inf, np.inf
                labels = [_range_label(seg.feature, ref.edges[picks[i]], ref.edges[picks[i + 1]],
                                       i, len(picks) - 1) for i in range(len(picks) - 1)]
                return f"{seg.feature} (training quantiles)", edges, j, labels
    if not classes:
        return "", None, None, []
    low = 1.0 / len(classes)
    cuts = [low] + [x for x in (0.6, 0.7, 0.8, 0.9) if x > low] + [1.0 + 1e-9]
    labels = [f"{round(a * 100)}-{min(100, round(b * 100))}%" for a, b in pairwise(cuts)]
    return "the champion's confidence", np.asarray(cuts), None, labels


def _range_label(feature: str, lo: float, hi: float, i: int, count: int) -> str:
    if i == 0:
        return f"{feature} < {hi:.4g}"
    if i == count - 1:
        return f"{feature} >= {lo:.4g}"
    return f"{feature} {lo:.4g} to {hi:.4g}"


def accumulators(plan: Plan, key: str) -> None:
    """Start accumulating for candidate ``key`` (a model seen in the records)."""
    if key in plan.pairs:
        return
    plan.pairs[key] = PairAccumulator(
        plan.champion, key, plan.layout.classes, plan.positive, plan.spec.decision,
        plan.segment_edges, plan.segment_feature)
    if key in plan.canary_weights:
        plan.abs[key] = ABAccumulator(plan.champion, key, tuple(plan.spec.outcomes))
