"""build_report: one pass over a source's batches -> the typed report with its verdicts.

The champion is the deployment's configured champion; every other model seen in the
window's records is a candidate (shadows, canaries, and models that were candidates earlier
in the window). Canaries get both comparisons: paired (the champion ran as their shadow) and
A/B (canary users vs champion users on business outcomes).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from gateway.analysis import checks, sections, words
from gateway.analysis.ab import ABAccumulator
from gateway.analysis.batch import CANARY, CHAMPION, SHADOW
from gateway.analysis.calls import Calls, TrafficAccumulator
from gateway.analysis.decode import Layout
from gateway.analysis.document import (
    CandidateReport,
    Check,
    Report,
    Traffic,
    Verdict,
    Window,
)
from gateway.analysis.drift import DriftAccumulator, Reference, references
from gateway.analysis.paired import PairAccumulator
from gateway.analysis.sources import Source
from gateway.backends.card import CARD_FILE
from gateway.config.load import LoadedConfig, resolve_ref
from gateway.config.schema import DeploymentSpec

DAY_S = 86_400.0


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


def plan_for(loaded: LoadedConfig, deployment: str, candidate: str | None = None) -> Plan:
    """Resolve the deployment's champion, classes, features, segments; raises KeyError."""
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


async def build_report(loaded: LoadedConfig, deployment: str, source: Source, *,
                       since: float | None = None, until: float | None = None,
                       candidate: str | None = None, now: float | None = None) -> Report:
    """Read ``source`` once and build the report of ``deployment``."""
    plan = plan_for(loaded, deployment, candidate)
    traffic = TrafficAccumulator()
    drift = DriftAccumulator(plan.refs)
    async for batch in source.batches(plan.layout):
        traffic.add(batch)
        drift.add(batch)
        for key in batch.models:
            if key != plan.champion and (plan.only is None or key == plan.only):
                _accumulators(plan, key)
        for acc in plan.pairs.values():
            acc.add(batch)
        for ab in plan.abs.values():
            ab.add(batch)
    return assemble(plan, traffic, drift, source, since, until,
                    time.time() if now is None else now, loaded.revision)


def _accumulators(plan: Plan, key: str) -> None:
    if key in plan.pairs:
        return
    plan.pairs[key] = PairAccumulator(
        plan.champion, key, plan.layout.classes, plan.positive, plan.spec.decision,
        plan.segment_edges, plan.segment_feature)
    if key in plan.canary_weights:
        plan.abs[key] = ABAccumulator(plan.champion, key, tuple(plan.spec.outcomes))


def assemble(plan: Plan, traffic: TrafficAccumulator, drift: DriftAccumulator, source: Source,
             since: float | None, until: float | None, now: float, revision: str) -> Report:
    per_second = traffic.per_second
    per_day = per_second * DAY_S if per_second else None
    label_rate = (traffic.labelled_records / (traffic.last - traffic.first)
                  if traffic.labelled_records > 1 and traffic.last > traffic.first else None)
    candidates = [candidate_report(plan, key, acc, traffic, per_day, label_rate)
                  for key, acc in sorted(plan.pairs.items(), key=lambda kv: -kv[1].pairs)]
    delay = traffic.label_delay
    stats = source.stats
    notes = []
    if stats.duplicates:
        notes.append(f"{stats.duplicates:,} repeated records (spool replays) counted once.")
    if stats.undecodable:
        notes.append(f"{stats.undecodable:,} stream entries could not be read and were skipped.")
    if traffic.records == 0:
        notes.append("No records in this window: send traffic to the deployment, or widen "
                     "--since/--until.")
    return Report(
        generated_at=now, deployment=plan.spec.name, revision=revision, champion=plan.champion,
        window=Window(since=since, until=until, source=source.name),
        traffic=Traffic(
            records=traffic.records, rows=traffic.rows,
            first=traffic.first if traffic.records else None,
            last=traffic.last if traffic.records else None,
            per_second=per_second, per_day=per_day, labelled=traffic.labelled_records,
            label_delay_p50_s=delay.quantile(0.5) if delay.n else None,
            label_delay_p95_s=delay.quantile(0.95) if delay.n else None,
            variants={"champion": traffic.records - traffic.canary_records,
                      "canary": traffic.canary_records},
            duplicates=stats.duplicates, undecodable=stats.undecodable),
        verdicts=[c.verdict for c in candidates], candidates=candidates,
        drift=sections.feature_drift(drift), notes=notes)


def candidate_report(plan: Plan, key: str, acc: PairAccumulator, traffic: TrafficAccumulator,
                     per_day: float | None, label_rate: float | None) -> CandidateReport:
    guard = plan.spec.guardrails
    c = guard.confidence
    is_canary = key in plan.canary_weights
    role = "canary" if is_canary else "shadow"
    champ_calls = traffic.calls.get((plan.champion, CHAMPION), Calls())
    cand_calls = _merged(traffic, key, (CANARY, SHADOW) if is_canary else (SHADOW,))
    ab = None
    if is_canary and key in plan.abs:
        weight = plan.canary_weights[key]
        ab = sections.ab_section(plan.abs[key], weight, 100.0 - sum(plan.canary_weights.values()),
                                 guard)
    accuracy = sections.accuracy_section(acc, guard) if acc.labelled_rows() or acc.pairs else None
    report = CandidateReport(
        model=key, role=role,
        verdict=Verdict(candidate=key, comparison="paired", verdict="needs_more_data",
                        headline="", reasons=[]),
        champion=sections.summary(plan.champion, "champion", champ_calls, c),
        candidate=sections.summary(key, role, cand_calls, c,
                                   "" if is_canary else "shadow calls are micro-batched"),
        agreement=sections.agreement_section(acc, c), accuracy=accuracy,
        business=sections.business_section(acc, c, per_day),
        drift=sections.prediction_drift(acc),
        segments=sections.segments_section(acc, plan.segment_by, plan.segment_labels, c),
        ab=ab)
    reasons = _checks(plan, key, acc, report, cand_calls, champ_calls, label_rate)
    return report.model_copy(update={"verdict": verdict(key, reasons, report, is_canary)})


def _merged(traffic: TrafficAccumulator, key: str, roles: tuple[int, ...]) -> Calls:
    out = Calls()
    for role in roles:
        calls = traffic.calls.get((key, role))
        if calls is not None:
            out.counts = out.counts + calls.counts
            out.latency = out.latency.merge(calls.latency)
    return out


def _checks(plan: Plan, key: str, acc: PairAccumulator, report: CandidateReport,
            cand_calls: Calls, champ_calls: Calls, label_rate: float | None) -> list[Check]:
    guard = plan.spec.guardrails
    out = [checks.coverage(key, cand_calls, guard), checks.pairs(key, acc.pairs, guard)]
    ab_acc = plan.abs.get(key)
    if report.ab is not None and ab_acc is not None:
        srm = report.ab.srm
        out.append(checks.sample_ratio(
            _srm(ab_acc, plan, key), srm.expected_share, srm.observed_share, guard))
    out.append(checks.error_rate(key, cand_calls, champ_calls, guard))
    if ab_acc is not None:
        out.append(checks.latency(key, ab_acc.calls[CANARY], ab_acc.calls[CHAMPION], guard, True))
    else:
        out.append(checks.latency(key, cand_calls, champ_calls, guard, False))
    agree = checks.agreement(key, int(np.trace(acc.flips)), int(acc.flips.sum()), guard)
    if agree is not None:
        out.append(agree)
    if acc.classifier or acc.loss_diff.n:
        more = report.accuracy.labels_needed if report.accuracy else None
        missing = max(guard.min_labels - acc.labelled_rows(), more or 0)
        hours = missing / label_rate / 3600 if label_rate else None
        diff = acc.correct_diff if acc.classifier else acc.loss_diff
        if acc.classifier or guard.require_labels:
            out.append(checks.accuracy(key, diff, acc.labelled_rows(), guard, missing, hours))
    if plan.spec.decision is not None:
        value = checks.business(key, acc.value_diff, plan.spec.decision.value_unit, guard)
        if value is not None:
            out.append(value)
    if report.ab is not None and ab_acc is not None:
        for spec, result in zip(plan.spec.outcomes, report.ab.outcomes, strict=True):
            from gateway.analysis.stats import Estimate

            lift = result.sequential_lift
            e = Estimate(math.nan if lift.value is None else lift.value,
                         math.nan if lift.low is None else lift.low,
                         math.nan if lift.high is None else lift.high, lift.confidence)
            enough = min(result.champion_n, result.canary_n) >= guard.min_pairs
            out.append(checks.outcome(spec.name, spec, e, enough))
    if not guard.require_labels:
        out = [ch for ch in out if not (ch.name == "accuracy" and ch.result == "hold"
                                        and ch.measured is None)]
    return out


def _srm(ab: ABAccumulator, plan: Plan, key: str) -> Any:
    from gateway.analysis.stats import sample_ratio_mismatch

    weight = plan.canary_weights[key]
    return sample_ratio_mismatch([ab.arms[CHAMPION], ab.arms[CANARY]],
                                 [100.0 - sum(plan.canary_weights.values()), weight],
                                 threshold=plan.spec.guardrails.max_srm_p)


def verdict(key: str, reasons: list[Check], report: CandidateReport, canary: bool) -> Verdict:
    failed = [r for r in reasons if r.result == "fail"]
    held = [r for r in reasons if r.result == "hold"]
    comparison = "ab" if canary else "paired"
    if failed:
        first = failed[0]
        return Verdict(candidate=key, comparison=comparison, verdict="do_not_promote",
                       headline=f"Do not promote {key}: {first.sentence}", reasons=reasons)
    if held:
        more = report.accuracy.labels_needed if report.accuracy else None
        accuracy = next((r for r in held if r.name == "accuracy"), None)
        hours = None
        headline = f"{key} needs more data: {held[0].sentence}"
        if accuracy is not None and len(held) == 1:
            headline = f"{key} needs more data: {accuracy.sentence}"
        return Verdict(candidate=key, comparison=comparison, verdict="needs_more_data",
                       headline=headline, reasons=reasons, more_labels=more, more_hours=hours)
    agreement = report.agreement.rate
    summary = ""
    if agreement is not None and agreement.value is not None:
        summary = (f" It agrees with the champion on {words.pct(agreement.value)} of requests"
                   f" ({round(agreement.confidence * 100)}% interval "
                   f"{words.pct(agreement.low)} to {words.pct(agreement.high)}).")
    return Verdict(candidate=key, comparison=comparison, verdict="ready_to_promote",
                   headline=f"{key} is ready to promote: every guardrail passed." + summary,
                   reasons=reasons)
