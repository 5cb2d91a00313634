"""A candidate's checks against its deployment's guardrails, and the verdict they give.

Health checks hold the verdict, a failed guardrail rejects the candidate, and a candidate is
ready only when every check passed (gateway/analysis/checks.py says how each one decides).
"""

from __future__ import annotations

import math

import numpy as np

from gateway.analysis import checks, words
from gateway.analysis.batch import CANARY, CHAMPION
from gateway.analysis.calls import Calls
from gateway.analysis.document import CandidateReport, Check, Interval, Verdict
from gateway.analysis.paired import PairAccumulator
from gateway.analysis.plan import Plan
from gateway.analysis.stats import Estimate, MeanVariance, sample_ratio_mismatch


def candidate_checks(plan: Plan, key: str, acc: PairAccumulator, report: CandidateReport,
                     cand_calls: Calls, champ_calls: Calls, label_rate: float | None
                     ) -> list[Check]:
    """Every check of candidate ``key``, health first."""
    guard = plan.spec.guardrails
    out = [checks.coverage(key, cand_calls, guard), checks.pairs(key, acc.pairs, guard)]
    ab = plan.abs.get(key)
    if ab is not None and report.ab is not None:
        champion_weight = 100.0 - sum(plan.canary_weights.values())
        srm = sample_ratio_mismatch([ab.units(CHAMPION), ab.units(CANARY)],
                                    [champion_weight, plan.canary_weights[key]],
                                    threshold=guard.max_srm_p)
        out.append(checks.sample_ratio(srm, report.ab.srm.expected_share,
                                       report.ab.srm.observed_share, guard))
    out.append(checks.error_rate(key, cand_calls, champ_calls, guard))
    if ab is not None:
        out.append(checks.latency(key, ab.calls[CANARY], ab.calls[CHAMPION], guard, True))
    else:
        out.append(checks.latency(key, cand_calls, champ_calls, guard, False))
    agree = checks.agreement(key, int(np.trace(acc.flips)), int(acc.flips.sum()), guard)
    if agree is not None:
        out.append(agree)
    labelled = acc.labelled_rows()
    if guard.require_labels or labelled >= guard.min_labels:
        missing = acc.labels_to_decide(guard.max_accuracy_drop, guard.min_labels,
                                       guard.confidence)
        hours = missing / label_rate / 3600 if label_rate and missing else None
        rates = None
        if acc.classifier and acc.table.n:
            t = acc.table
            rates = ((t.both + t.first_only) / t.n, (t.both + t.second_only) / t.n)
        diff = acc.correct_diff if acc.classifier else _negated(acc.loss_diff)
        out.append(checks.accuracy(key, diff, labelled, guard, missing, hours, rates))
    if plan.spec.decision is not None:
        value = checks.business(key, acc.value_diff, plan.spec.decision.value_unit, guard)
        if value is not None:
            out.append(value)
    if report.ab is not None:
        for spec, outcome in zip(plan.spec.outcomes, report.ab.outcomes, strict=True):
            enough = min(outcome.champion_n, outcome.canary_n) >= guard.min_pairs
            out.append(checks.outcome(spec.name, spec, _estimate(outcome.sequential_lift),
                                      enough))
    return out


def _negated(stats: MeanVariance) -> MeanVariance:
    """Squared-error differences turned so that, as for accuracy, higher is better."""
    return MeanVariance(stats.n, -stats.mean, stats.m2)


def _estimate(i: Interval) -> Estimate:
    def num(x: float | None) -> float:
        return math.nan if x is None else x

    return Estimate(num(i.value), num(i.low), num(i.high), i.confidence, i.p_value, i.note)


def verdict(key: str, reasons: list[Check], report: CandidateReport, canary: bool,
            more_labels: int | None = None, more_hours: float | None = None) -> Verdict:
    """Do not promote on any failed guardrail; needs more data while a check holds; else
    ready to promote. ``more_labels``/``more_hours``: what the accuracy check still needs."""
    comparison = "ab" if canary else "paired"
    failed = [r for r in reasons if r.result == "fail"]
    if failed:
        return Verdict(candidate=key, comparison=comparison, verdict="do_not_promote",
                       headline=f"Do not promote {key}. {failed[0].sentence}", reasons=reasons)
    held = [r for r in reasons if r.result == "hold"]
    if held:
        accuracy = next((r for r in held if r.name == "accuracy"), None)
        health = [r for r in held if r.kind == "health"]
        first = health[0] if health else accuracy if accuracy is not None else held[0]
        waiting = accuracy is not None
        return Verdict(candidate=key, comparison=comparison, verdict="needs_more_data",
                       headline=f"{key} needs more data. {first.sentence}", reasons=reasons,
                       more_labels=more_labels if waiting else None,
                       more_hours=more_hours if waiting else None)
    summary = ""
    rate = report.agreement.rate
    if rate is not None and rate.value is not None:
        summary = (f" It agrees with the champion on {words.pct(rate.value)} of requests "
                   f"({round(rate.confidence * 100)}% interval {words.pct(rate.low)} to "
                   f"{words.pct(rate.high)}).")
    return Verdict(candidate=key, comparison=comparison, verdict="ready_to_promote",
                   headline=f"{key} is ready to promote: every guardrail passed." + summary,
                   reasons=reasons)
