"""Accumulated statistics -> the document's sections, with intervals and sentences."""

from __future__ import annotations

import math

import numpy as np

from gateway.analysis import words
from gateway.analysis.ab import ABAccumulator
from gateway.analysis.batch import CANARY, CHAMPION, DROPPED, ERROR, OK, SHED, TIMEOUT
from gateway.analysis.calls import Calls
from gateway.analysis.document import (
    ABComparison,
    Accuracy,
    Agreement,
    Business,
    Coverage,
    FeatureDrift,
    FlipMatrix,
    Histogram,
    Interval,
    Latency,
    ModelAccuracy,
    ModelSummary,
    Outcome,
    PredictionDrift,
    SampleRatio,
    Segment,
    Segments,
)
from gateway.analysis.drift import DriftAccumulator
from gateway.analysis.paired import DIFF_BINS, SCORE_BINS, PairAccumulator
from gateway.analysis.stats import (
    Estimate,
    MeanVariance,
    agreement,
    cohens_kappa,
    cs_difference,
    cs_mean,
    cs_relative_lift,
    delong_test,
    difference_of_means,
    drift_against_reference,
    expected_accuracy_from_sums,
    holm,
    ks_binned,
    mcnemar,
    mean_interval,
    paired_difference,
    pearson,
    psi,
    psi_level,
    relative_lift,
    sample_ratio_mismatch,
    wilson,
)
from gateway.config.schema import GuardrailSpec, OutcomeSpec

DAY_S = 86_400.0
ROUGH_SPAN_S = 3600.0  # a day's figure scaled from records spanning less is called rough


def coverage(calls: Calls, confidence: float) -> Coverage:
    asked = calls.asked
    return Coverage(
        asked=asked, ok=calls.count(OK), error=calls.count(ERROR), timeout=calls.count(TIMEOUT),
        dropped=calls.count(DROPPED), shed=calls.count(SHED),
        ok_rate=Interval.of(wilson(calls.count(OK), asked, confidence)),
        error_rate=Interval.of(wilson(calls.failed, asked - calls.not_sampled, confidence)))


def latency(calls: Calls, note: str = "") -> Latency:
    h = calls.latency
    if h.n == 0:
        return Latency(n=0, p50_ms=None, p95_ms=None, p99_ms=None, note=note or "no answers")
    return Latency(n=h.n, p50_ms=h.quantile(0.5), p95_ms=h.quantile(0.95),
                   p99_ms=h.quantile(0.99), note=note)


def summary(model: str, role: str, calls: Calls, confidence: float, note: str = ""
            ) -> ModelSummary:
    return ModelSummary(model=model, role=role, coverage=coverage(calls, confidence),
                        latency=latency(calls, note))


def agreement_section(acc: PairAccumulator, confidence: float) -> Agreement:
    if not acc.classifier:
        return Agreement(
            pairs=acc.pairs, score_difference=Interval.of(mean_interval(acc.diff, confidence)),
            correlation=Interval.of(pearson(acc.co, confidence)) if acc.co.n > 2 else None)
    hist = acc.diff_hist
    edges = np.linspace(-1.0, 1.0, DIFF_BINS + 1)
    abs_p50, abs_p95 = _abs_quantiles(hist, edges)
    return Agreement(
        pairs=acc.pairs, rate=Interval.of(agreement(acc.flips, confidence)),
        kappa=Interval.of(cohens_kappa(acc.flips, confidence)) if acc.pairs else None,
        flips=FlipMatrix(classes=list(acc.classes), counts=acc.flips.tolist()),
        score_difference=Interval.of(mean_interval(acc.diff, confidence)),
        score_difference_histogram=Histogram(edges=edges.tolist(), counts=hist.tolist()),
        abs_difference_p50=abs_p50, abs_difference_p95=abs_p95,
        positive_class=acc.classes[acc.positive])


def _abs_quantiles(hist: np.ndarray, edges: np.ndarray) -> tuple[float | None, float | None]:
    """p50 and p95 of |difference| from the signed histogram (upper bin edges: conservative)."""
    total = int(hist.sum())
    if total == 0:
        return None, None
    mid = len(hist) // 2
    folded = hist[mid:].astype(np.int64).copy()
    folded += hist[:mid][::-1]
    cum = np.cumsum(folded)
    upper = edges[mid + 1:]
    return (float(upper[np.searchsorted(cum, 0.5 * total)]),
            float(upper[np.searchsorted(cum, 0.95 * total)]))


def accuracy_section(acc: PairAccumulator, guard: GuardrailSpec, auc: bool = True) -> Accuracy:
    c = guard.confidence
    labelled = acc.labelled_rows()
    coverage_est = Interval.of(wilson(labelled, acc.pairs, c))
    if not acc.classifier:
        return Accuracy(
            labelled=labelled, label_coverage=coverage_est,
            champion=ModelAccuracy(mean_abs_error=_mean(acc.champ_abs, c)),
            candidate=ModelAccuracy(mean_abs_error=_mean(acc.cand_abs, c)),
            log_loss_difference=_mean(acc.loss_diff, c))
    table = acc.table
    champ_right = table.both + table.second_only
    cand_right = table.both + table.first_only
    champion = ModelAccuracy(
        accuracy=Interval.of(wilson(champ_right, table.n, c)),
        log_loss=_mean(acc.champ_loss, c), brier=_mean(acc.champ_brier, c),
        estimated_accuracy=_cbpe(acc.champ_conf, c))
    candidate = ModelAccuracy(
        accuracy=Interval.of(wilson(cand_right, table.n, c)),
        log_loss=_mean(acc.cand_loss, c), brier=_mean(acc.cand_brier, c),
        estimated_accuracy=_cbpe(acc.cand_conf, c))
    auc_difference = None
    triples = acc.triples() if auc else np.zeros((0, 3))
    if triples.shape[0] >= 2:
        test = delong_test(triples[:, 0], triples[:, 2], triples[:, 1], c)
        champion = champion.model_copy(update={"auc": Interval.of(test.second)})
        candidate = candidate.model_copy(update={"auc": Interval.of(test.first)})
        auc_difference = Interval.of(test.difference)
    needed = acc.labels_to_decide(guard.max_accuracy_drop, guard.min_labels, c)
    return Accuracy(
        labelled=labelled, label_coverage=coverage_est, champion=champion, candidate=candidate,
        difference=Interval.of(paired_difference(table, c)),
        sequential=Interval.of(cs_mean(acc.correct_diff, c)),
        mcnemar_p=mcnemar(table).p_value if table.n else None,
        auc_difference=auc_difference, log_loss_difference=_mean(acc.loss_diff, c),
        labels_needed=needed)


def _mean(stats: MeanVariance, confidence: float) -> Interval | None:
    return Interval.of(mean_interval(stats, confidence)) if stats.n else None


def _cbpe(conf: MeanVariance, confidence: float) -> Interval | None:
    if conf.n == 0:
        return None
    total = conf.mean * conf.n
    # sum c(1 - c) = sum c - sum c^2, and sum c^2 = M2 + n mean^2.
    sum_sq = conf.m2 + conf.n * conf.mean ** 2
    return Interval.of(expected_accuracy_from_sums(conf.n, total, total - sum_sq, confidence))


def business_section(acc: PairAccumulator, confidence: float, per_day: float | None,
                     span_s: float | None = None) -> Business | None:
    """The business view of the decision the config declares; ``per_day``: requests a day at
    the rate of the window's records, which span ``span_s`` seconds (a figure scaled from less
    than an hour is said to be rough)."""
    d = acc.decision
    if d is None or not acc.classifier:
        return None
    champ_act, cand_act, flips, rows = (int(x) for x in acc.acts)
    what = f"{d.action} when P({d.positive_class}) >= {d.threshold:g}"
    flip = wilson(flips, rows, confidence)
    before, after = wilson(champ_act, rows, confidence), wilson(cand_act, rows, confidence)
    sentence = (f"Promotion would change the decision ({what}) on {words.pct(flip.value)} of "
                f"requests {words.pct_interval(flip)}: the action would be taken on "
                f"{words.pct(after.value)} of requests instead of {words.pct(before.value)}.")
    section = Business(decision=what, unit=d.value_unit, flip_rate=Interval.of(flip),
                       rate_before=Interval.of(before), rate_after=Interval.of(after),
                       sentence=sentence)
    if acc.value_diff.n < 2:
        return section.model_copy(update={"sentence": sentence + " Its value needs labels."})
    champ = _scaled(mean_interval(acc.champ_value, confidence), 1000)
    cand = _scaled(mean_interval(acc.cand_value, confidence), 1000)
    diff = _scaled(cs_mean(acc.value_diff, confidence), 1000)
    per_day_diff = _scaled(diff, per_day / 1000) if per_day else None
    unit = d.value_unit
    sentence += (f" Per 1,000 requests the decisions are worth {words.money(cand.value, unit)}"
                 f" with the candidate against {words.money(champ.value, unit)} now: "
                 f"{words.money(diff.value, d.value_unit)} "
                 f"(95% interval {words.money(diff.low, d.value_unit)} to "
                 f"{words.money(diff.high, d.value_unit)})")
    rough = ""
    if per_day_diff is not None and per_day:
        if span_s is not None and span_s < ROUGH_SPAN_S:
            rough = f"a rough figure, from records that cover {words.duration(span_s / 3600)}"
        sentence += (f", about {words.money(per_day_diff.value, d.value_unit)} a day at "
                     f"current traffic ({words.number(per_day, 0)} requests a day"
                     + (f"; {rough})" if rough else ")"))
    return section.model_copy(update={
        "value_per_1000_before": Interval.of(champ), "value_per_1000_after": Interval.of(cand),
        "value_difference_per_1000": Interval.of(diff),
        "value_difference_per_day": (Interval.of(per_day_diff).model_copy(update={"note": rough})
                                     if per_day_diff else None),
        "sentence": sentence + "."})


def _scaled(e: Estimate, factor: float) -> Estimate:
    return Estimate(e.value * factor, e.low * factor, e.high * factor, e.confidence,
                    e.p_value, e.note)


def prediction_drift(acc: PairAccumulator) -> PredictionDrift | None:
    if not acc.classifier or acc.champ_hist.sum() == 0:
        return None
    value = psi(acc.cand_hist, acc.champ_hist / acc.champ_hist.sum())
    ks = ks_binned(acc.cand_hist, acc.champ_hist)
    edges = np.linspace(0.0, 1.0, SCORE_BINS + 1).tolist()
    return PredictionDrift(
        psi=None if math.isnan(value) else value, level=psi_level(value),
        ks_statistic=None if math.isnan(ks.statistic) else ks.statistic,
        ks_p_value=None if math.isnan(ks.p_value) else ks.p_value,
        champion_histogram=Histogram(edges=edges, counts=acc.champ_hist.tolist()),
        candidate_histogram=Histogram(edges=edges, counts=acc.cand_hist.tolist()))


def segments_section(acc: PairAccumulator, by: str, labels: list[str], confidence: float
                     ) -> Segments | None:
    if acc.segment_edges is None or not acc.classifier:
        return None
    diffs = [paired_difference(t, confidence) for t in acc.seg_tables]
    tests = [mcnemar(t).p_value if t.n else math.nan for t in acc.seg_tables]
    known = [i for i, p in enumerate(tests) if not math.isnan(p)]
    adjusted = [math.nan] * len(tests)
    if known:
        for i, p in zip(known, holm([tests[i] for i in known]), strict=True):
            adjusted[i] = float(p)
    segments = [Segment(
        name=labels[i], rows=int(acc.seg_rows[i]),
        agreement=Interval.of(wilson(int(acc.seg_agree[i]), int(acc.seg_rows[i]), confidence))
        if acc.seg_rows[i] else None,
        accuracy_difference=Interval.of(diffs[i]) if acc.seg_tables[i].n else None,
        p_adjusted=None if math.isnan(adjusted[i]) else adjusted[i])
        for i in range(len(labels))]
    return Segments(by=by, correction="Holm", segments=segments)


def ab_section(ab: ABAccumulator, canary_weight: float, champion_weight: float,
               guard: GuardrailSpec) -> ABComparison:
    c = guard.confidence
    champ_n, canary_n = ab.units(CHAMPION), ab.units(CANARY)
    srm = sample_ratio_mismatch([champ_n, canary_n], [champion_weight, canary_weight],
                                threshold=guard.max_srm_p)
    total = champ_n + canary_n
    ratio = SampleRatio(
        expected_share=canary_weight / (canary_weight + champion_weight)
        if canary_weight + champion_weight else 0.0,
        observed_share=canary_n / total if total else 0.0, champion=champ_n, canary=canary_n,
        p_value=None if math.isnan(srm.p_value) else srm.p_value, flagged=srm.flagged,
        note=srm.note)
    champ_calls, canary_calls = ab.calls[CHAMPION], ab.calls[CANARY]
    return ABComparison(
        srm=ratio, outcomes=[outcome(ab, spec, c) for spec in ab.outcomes],
        canary_latency=latency(canary_calls), champion_latency=latency(champ_calls),
        canary_error_rate=Interval.of(wilson(canary_calls.failed, canary_calls.asked, c)),
        champion_error_rate=Interval.of(wilson(champ_calls.failed, champ_calls.asked, c)))


def outcome(ab: ABAccumulator, spec: OutcomeSpec, confidence: float) -> Outcome:
    canary = ab.values.get((spec.name, CANARY), MeanVariance())
    champ = ab.values.get((spec.name, CHAMPION), MeanVariance())
    diff = difference_of_means(canary, champ, confidence)
    lift = relative_lift(canary, champ, confidence)
    seq_diff = cs_difference(canary, champ, confidence)
    seq_lift = cs_relative_lift(canary, champ, confidence)
    if seq_lift.defined:
        sentence = (f"{spec.name}: canary users {words.number(canary.mean)} vs champion users "
                    f"{words.number(champ.mean)} per request, a change of "
                    f"{words.pct(seq_lift.value)} {words.pct_interval(seq_lift)}.")
    else:
        sentence = f"{spec.name}: not enough posted outcomes yet ({seq_lift.note})."
    return Outcome(
        name=spec.name, better=spec.better,
        champion_mean=champ.mean if champ.n else None,
        canary_mean=canary.mean if canary.n else None, champion_n=champ.n, canary_n=canary.n,
        difference=Interval.of(diff), lift=Interval.of(lift),
        sequential_difference=Interval.of(seq_diff), sequential_lift=Interval.of(seq_lift),
        sentence=sentence)


def feature_drift(acc: DriftAccumulator) -> list[FeatureDrift]:
    out = []
    for ref, counts in zip(acc.refs, acc.counts, strict=True):
        n = int(counts.sum())
        if not ref.edges.size or n == 0:
            continue
        result = drift_against_reference(counts, ref.fractions)
        out.append(FeatureDrift(
            feature=ref.feature, rows=n, psi=None if math.isnan(result.psi) else result.psi,
            level=result.level, p_value=None if math.isnan(result.chi_square.p_value)
            else result.chi_square.p_value, edges=ref.edges.tolist(),
            expected=ref.fractions.tolist(), observed=(counts / n).tolist()))
    out.sort(key=lambda f: -(f.psi or 0.0))
    return out
