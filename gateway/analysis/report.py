"""build_report: one pass over a source's batches -> the typed report with its verdicts.

The champion is the deployment's configured champion; every other model seen in the
window's records is a candidate (shadows, canaries, and models that were candidates earlier
in the window). Canaries get both comparisons: paired (the champion ran as their shadow) and
A/B (canary users vs champion users on business outcomes).
"""

from __future__ import annotations

import time

from gateway.analysis import sections
from gateway.analysis.batch import CANARY, CHAMPION, SHADOW
from gateway.analysis.calls import Calls, TrafficAccumulator
from gateway.analysis.document import CandidateReport, Report, Traffic, Verdict, Window
from gateway.analysis.drift import DriftAccumulator
from gateway.analysis.paired import PairAccumulator
from gateway.analysis.plan import Plan, accumulators, plan_for
from gateway.analysis.sources import Source
from gateway.analysis.verdict import candidate_checks, verdict
from gateway.config.load import LoadedConfig

DAY_S = 86_400.0


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
                accumulators(plan, key)
        for acc in plan.pairs.values():
            acc.add(batch)
        for ab in plan.abs.values():
            ab.add(batch)
    return assemble(plan, traffic, drift, source, since, until,
                    time.time() if now is None else now, loaded.revision)


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
                     per_day: float | None, label_rate: float | None, *,
                     full: bool = True) -> CandidateReport:
    """One candidate's sections and verdict; ``full`` False leaves out what no check reads
    (AUC, segments, prediction drift, the business view), for a rollout's frequent looks."""
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
    accuracy = (sections.accuracy_section(acc, guard, auc=full)
                if acc.labelled_rows() or acc.pairs else None)
    report = CandidateReport(
        model=key, role=role,
        verdict=Verdict(candidate=key, comparison="paired", verdict="needs_more_data",
                        headline="", reasons=[]),
        champion=sections.summary(plan.champion, "champion", champ_calls, c),
        candidate=sections.summary(key, role, cand_calls, c,
                                   "" if is_canary else "shadow calls are micro-batched"),
        agreement=sections.agreement_section(acc, c), accuracy=accuracy,
        business=(sections.business_section(acc, c, per_day, traffic.last - traffic.first)
                  if full else None),
        drift=sections.prediction_drift(acc) if full else None,
        segments=(sections.segments_section(acc, plan.segment_by, plan.segment_labels, c)
                  if full else None),
        ab=ab)
    reasons = candidate_checks(plan, key, acc, report, cand_calls, champ_calls,
                               label_rate)
    more = acc.labels_to_decide(guard.max_accuracy_drop, guard.min_labels, c)
    hours = more / label_rate / 3600 if label_rate and more else None
    return report.model_copy(update={"verdict": verdict(key, reasons, report, is_canary,
                                                         more or None, hours)})


def _merged(traffic: TrafficAccumulator, key: str, roles: tuple[int, ...]) -> Calls:
    out = Calls()
    for role in roles:
        calls = traffic.calls.get((key, role))
        if calls is not None:
            out.counts = out.counts + calls.counts
            out.latency = out.latency.merge(calls.latency)
    return out


