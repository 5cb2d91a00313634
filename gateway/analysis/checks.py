"""Named checks of a candidate against the guardrails: (name, measured, bound, condition, result).

The verdict of a report and the decisions of a rollout are built from these same checks. Every
check that decides (pass or fail) uses an always-valid confidence sequence
(gateway/analysis/stats/sequential.py), so a report refreshed every minute, or a rollout
controller evaluating every few seconds, does not raise its false-alarm rate by looking again.
Health checks never fail a candidate: they hold the verdict until the evidence is sound.
"""

from __future__ import annotations

import math

from gateway.analysis import words
from gateway.analysis.calls import Calls
from gateway.analysis.document import Check
from gateway.analysis.stats import Estimate, MeanVariance, SrmResult, cs_difference, cs_mean
from gateway.config.schema import GuardrailSpec, OutcomeSpec


def _num(x: float) -> float | None:
    return None if math.isnan(x) or math.isinf(x) else x


def coverage(candidate: str, calls: Calls, guard: GuardrailSpec) -> Check:
    """Health: the candidate saw enough of the traffic it was asked for (not dropped/shed)."""
    asked = calls.asked
    share = (asked - calls.not_sampled) / asked if asked else math.nan
    ok = asked > 0 and share >= guard.min_coverage
    return Check(
        name="coverage", kind="health", measured=_num(share), bound=guard.min_coverage,
        condition=f"share of requests {candidate} saw (not dropped or shed) >= "
                  f"{words.pct(guard.min_coverage)}",
        result="pass" if ok else "hold",
        sentence=f"{candidate} saw {words.pct(share)} of the requests it was sent"
        + ("." if ok else f"; a verdict needs at least {words.pct(guard.min_coverage)} "
           "(raise the shadow's queue or budget, or wait)."))


def pairs(candidate: str, count: int, guard: GuardrailSpec) -> Check:
    ok = count >= guard.min_pairs
    return Check(
        name="pairs", kind="health", measured=count, bound=guard.min_pairs,
        condition=f"requests both models answered >= {guard.min_pairs}",
        result="pass" if ok else "hold",
        sentence=f"Both models answered {count:,} requests"
        + ("." if ok else f"; a verdict needs at least {guard.min_pairs:,}."))


def sample_ratio(srm: SrmResult, expected: float, observed: float, guard: GuardrailSpec
                 ) -> Check:
    """Health: the canary got the share of users it was configured for."""
    if not srm.checked:
        result, sentence = "info", f"The canary split is not checked yet: {srm.note}."
    elif srm.flagged:
        result = "hold"
        sentence = (f"The canary got {words.pct(observed, 2)} of users but is configured for "
                    f"{words.pct(expected, 2)} (p = {srm.p_value:.2g}): the split is broken, "
                    "so no comparison of users can be trusted until it is fixed.")
    else:
        result = "pass"
        sentence = (f"The canary got {words.pct(observed, 2)} of users, as configured "
                    f"({words.pct(expected, 2)}).")
    return Check(
        name="sample_ratio", kind="health", measured=_num(srm.p_value), bound=guard.max_srm_p,
        condition=f"chi-squared p-value of the split >= {guard.max_srm_p:g}", result=result,
        sentence=sentence)


def error_rate(candidate: str, cand: Calls, champ: Calls, guard: GuardrailSpec) -> Check:
    """Guardrail: the candidate's errors and timeouts exceed the champion's by at most a bound."""
    c, bound = guard.confidence, guard.max_error_rate_increase
    cand_n, champ_n = cand.asked - cand.not_sampled, champ.asked - champ.not_sampled
    if cand_n < 2 or champ_n < 2:
        return Check(name="error_rate", kind="guardrail", measured=None, bound=bound,
                     condition=f"error rate increase <= {words.points(bound)}", result="hold",
                     sentence=f"Too few calls of {candidate} to compare error rates.")
    e = cs_difference(MeanVariance.from_counts(cand.failed, cand_n),
                      MeanVariance.from_counts(champ.failed, champ_n), c)
    cand_rate, champ_rate = cand.failed / cand_n, champ.failed / champ_n
    result = "fail" if e.low > bound else "pass" if e.high <= bound else "hold"
    if cand.failed == champ.failed == 0:
        sentence = f"Neither {candidate} nor the champion failed any of their calls"
    else:
        sentence = (f"{candidate} failed {words.pct(cand_rate, 2)} of calls against "
                    f"{words.pct(champ_rate, 2)} for the champion "
                    f"({words.points(e.value, 2)}, {words.points_interval(e, 2)[1:-1]})")
    sentence += {"fail": f", more than the allowed {words.points(bound)}.",
                 "pass": f", within the allowed {words.points(bound)}.",
                 "hold": "; not yet clear whether that is within the allowed "
                         f"{words.points(bound)}."}[result]
    return Check(name="error_rate", kind="guardrail", measured=_num(e.value), bound=bound,
                 condition=f"candidate - champion error rate <= {words.points(bound)} "
                           f"({round(c * 100)}% confidence sequence)",
                 result=result, sentence=sentence)


def latency(candidate: str, cand: Calls, champ: Calls, guard: GuardrailSpec, comparable: bool,
            min_calls: int = 200) -> Check:
    """Guardrail where both answered callers (a canary); information for a shadow, whose
    calls are micro-batched.

    "p99 no more than ``bound`` times the champion's" means that at most 1% of the
    candidate's answers take longer than ``bound`` x the champion's p99. The share of those
    that do is tested with the always-valid confidence sequence (one-sided): the check fails
    when it is above 1% with confidence, and passes otherwise once each side has
    ``min_calls`` answers. (A ratio of two p99 point estimates swings with a handful of slow
    requests; this test does not.)
    """
    bound = guard.max_p99_latency_ratio
    condition = (f"share of candidate answers slower than {bound:g} x the champion's p99 "
                 f"<= 1% ({round(guard.confidence * 100)}% confidence sequence)")
    if cand.latency.n < min_calls or champ.latency.n < min_calls:
        return Check(name="latency_p99", kind="guardrail" if comparable else "info",
                     measured=None, bound=bound, condition=condition,
                     result="hold" if comparable else "info",
                     sentence=f"Too few answers to compare latency (need {min_calls} each).")
    c99, p99 = cand.latency.quantile(0.99), champ.latency.quantile(0.99)
    ratio = c99 / p99 if p99 > 0 else math.inf
    if not comparable:
        return Check(name="latency_p99", kind="info", measured=_num(ratio), bound=bound,
                     condition=condition, result="info",
                     sentence=f"As a shadow, {candidate} answered micro-batches in "
                     f"{c99:.2f} ms at p99 (the champion answers one request in {p99:.2f} ms): "
                     "compare latency once it serves as a canary.")
    slow = cand.latency.count_above(bound * p99)
    share = cs_mean(MeanVariance.from_counts(slow, cand.latency.n), guard.confidence,
                    alternative="greater", null=0.01)
    slower = share.low > 0.01
    return Check(name="latency_p99", kind="guardrail", measured=_num(ratio), bound=bound,
                 condition=condition, result="fail" if slower else "pass",
                 sentence=f"{candidate} answered in {c99:.2f} ms at p99 against {p99:.2f} ms "
                 f"for the champion ({ratio:.2f}x; at most {bound:g}x allowed); "
                 f"{words.pct(slow / cand.latency.n)} of its answers took longer than "
                 f"{bound:g}x the champion's p99"
                 + (": clearly slower." if slower else "."))


def agreement(candidate: str, agree: int, total: int, guard: GuardrailSpec) -> Check | None:
    bound = guard.min_agreement
    if bound is None:
        return None
    c = guard.confidence
    e = cs_mean(MeanVariance.from_counts(agree, total), c) if total >= 2 else \
        Estimate.undefined(c, "too few pairs")
    result = "hold" if not e.defined else "fail" if e.high < bound else \
        "pass" if e.low >= bound else "hold"
    return Check(name="agreement", kind="guardrail", measured=_num(e.value), bound=bound,
                 condition=f"agreement with the champion >= {words.pct(bound)}", result=result,
                 sentence=f"{candidate} agrees with the champion on {words.pct(e.value)} of "
                 f"requests {words.pct_interval(e)}; at least {words.pct(bound)} is required.")


def accuracy(candidate: str, diff: MeanVariance, labelled: int, guard: GuardrailSpec,
             more: int | None, hours: float | None,
             rates: tuple[float, float] | None = None) -> Check:
    """Guardrail: paired accuracy not worse than the champion's by more than the margin.

    ``diff`` holds per labelled row candidate-right minus champion-right (or, for a model
    without classes, candidate minus champion squared error, where lower is better);
    ``rates``: (candidate, champion) accuracy, for the sentence.
    """
    c, margin = guard.confidence, guard.max_accuracy_drop
    condition = (f"candidate - champion accuracy >= {words.points(-margin)} "
                 f"({round(c * 100)}% confidence sequence, paired)")
    if labelled < guard.min_labels or diff.n < 2:
        missing = max(guard.min_labels - labelled, 0)
        return Check(name="accuracy", kind="guardrail", measured=None, bound=-margin,
                     condition=condition, result="hold",
                     sentence=f"{labelled:,} labelled requests so far; accuracy is compared "
                     f"from {guard.min_labels:,} on ({missing:,} more"
                     + (f", {words.duration(hours)} at the current rate of labels)."
                        if hours is not None else ")."))
    e = cs_mean(diff, c)
    result = "fail" if e.high < -margin else "pass" if e.low >= -margin else "hold"
    if rates is not None:
        sentence = (f"{candidate} was right on {words.pct(rates[0])} of {labelled:,} labelled "
                    f"requests, the champion on {words.pct(rates[1])}: "
                    f"{words.points(e.value)} {words.points_interval(e)}")
    else:
        sentence = (f"On {labelled:,} labelled requests {candidate}'s accuracy differs from "
                    f"the champion's by {words.points(e.value)} {words.points_interval(e)}")
    allowed = f"{margin * 100:.1f} points"
    if result == "fail":
        sentence += f": worse by more than the {allowed} allowed."
    elif result == "pass":
        sentence += f": not worse by more than the {allowed} allowed."
    elif more:
        sentence += (f". To tell whether it is within the {allowed} allowed, about "
                     f"{more:,} more labelled requests are needed"
                     + (f" ({words.duration(hours)} at the current rate of labels)."
                        if hours is not None else "."))
    else:
        sentence += (f". It sits right at the {allowed} allowed: more labels narrow the "
                     "interval, but may not settle it; a person should decide.")
    return Check(name="accuracy", kind="guardrail", measured=_num(e.value), bound=-margin,
                 condition=condition, result=result, sentence=sentence)


def business(candidate: str, diff: MeanVariance, unit: str, guard: GuardrailSpec
             ) -> Check | None:
    """Guardrail: decisions are not worth significantly less with the candidate."""
    if diff.n < 2:
        return None
    e = cs_mean(diff, guard.confidence, alternative="less")
    result = "fail" if e.high < 0 else "pass"
    per_1000 = e.value * 1000
    direction = "more" if per_1000 >= 0 else "less"
    sentence = (f"Per 1,000 labelled requests, {candidate}'s decisions are worth "
                f"{words.money(abs(per_1000), unit).lstrip('+')} {direction} than the "
                "champion's")
    return Check(name="business_value", kind="guardrail", measured=_num(e.value), bound=0.0,
                 condition=f"value per request with the candidate - with the champion is not "
                           f"below 0 ({round(guard.confidence * 100)}% confidence sequence)",
                 result=result,
                 sentence=sentence + (": significantly less." if result == "fail" else "."))


def outcome(name: str, spec: OutcomeSpec, lift: Estimate, enough: bool) -> Check:
    """Guardrail on a business outcome, canary users vs champion users: fails when the canary
    users are worse beyond ``max_drop`` (relative), with confidence; holds until ``enough``
    outcomes were posted in each arm."""
    bad_is_low = spec.better == "higher"
    margin = spec.max_drop
    bound = -margin if bad_is_low else margin
    limit = f"{abs(bound):.1%} {'lower' if bad_is_low else 'higher'}" if margin else "worse"
    condition = (f"{name} of canary users is not significantly {limit} than of champion users "
                 "(always-valid interval of the relative change)")
    if not enough or not lift.defined:
        return Check(name=f"outcome:{name}", kind="guardrail", measured=None, bound=bound,
                     condition=condition, result="hold",
                     sentence=f"{name}: not enough outcomes posted yet"
                     + (f" ({lift.note})." if lift.note else "."))
    worse = lift.high < bound if bad_is_low else lift.low > bound
    result = "fail" if worse else "pass"
    change = (f"{name} of canary users is {words.signed_pct(lift.value)} against champion "
              f"users (always-valid {round(lift.confidence * 100)}% interval "
              f"{words.signed_pct(lift.low)} to {words.signed_pct(lift.high)})")
    return Check(name=f"outcome:{name}", kind="guardrail", measured=_num(lift.value),
                 bound=bound, condition=condition, result=result,
                 sentence=change + (": significantly worse." if worse
                                    else ": no sign that it is worse so far."))
