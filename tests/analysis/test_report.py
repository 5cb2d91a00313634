"""The report's numbers against the same numbers computed directly from the records."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import orjson
import pytest

from gateway.analysis import words
from gateway.analysis.decode import Feedback
from gateway.analysis.document import Report
from gateway.analysis.report import build_report
from gateway.analysis.stats import MeanVariance, cs_mean, difference_of_means, wilson
from tests.analysis.synthetic import Candidate, MemorySource, World, generate
from tests.helpers import config, loaded

DECISION = {"positive_class": "malignant", "threshold": 0.5, "action": "refer for biopsy",
            "value_unit": "EUR",
            "values": {"true_positive": 40, "false_positive": -15, "false_negative": -100}}
VALUES = {(True, True): 40.0, (True, False): -15.0, (False, True): -100.0, (False, False): 0.0}


def deployment(**extra: Any) -> dict[str, Any]:
    return {"name": "breast-cancer", "champion": "bc-logreg", "decision": DECISION,
            "outcomes": [{"name": "converted", "missing": 0}], **extra}


def report_of(world: World, dep: dict[str, Any]) -> tuple[Report, list[dict[str, Any]], dict]:
    payloads, feedback = generate(world)
    data = loaded(config([dep]))
    report = asyncio.run(build_report(data, "breast-cancer", MemorySource(payloads, feedback)))
    return report, [orjson.loads(p) for p in payloads], feedback


def by_model(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["model"]: p for p in record["predictions"]}


@pytest.fixture(scope="module")
def shadowed() -> tuple[Report, list[dict[str, Any]], dict]:
    world = World(records=3000, labelled=0.6, seed=3, candidates=[
        Candidate("bc-gbt", flip=0.1, fail=0.02), Candidate("bc-rf", fix=0.4)])
    return report_of(world, deployment(shadows=[{"model": "bc-gbt"}, {"model": "bc-rf"}]))


def test_agreement_flips_and_accuracy_match_a_direct_count(shadowed: tuple) -> None:
    report, records, feedback = shadowed
    section = next(c for c in report.candidates if c.model == "bc-gbt:1")
    champ, cand, truth = [], [], []
    for r in records:
        m = by_model(r)
        if m["bc-gbt"]["status"] != "ok":
            continue
        champ.append(m["bc-logreg"]["output"]["label"][0])
        cand.append(m["bc-gbt"]["output"]["label"][0])
        fb = feedback.get(r["request_id"])
        truth.append(fb.label if fb else None)
    agree = sum(a == b for a, b in zip(champ, cand, strict=True))
    assert section.agreement.pairs == len(champ)
    assert section.agreement.rate is not None
    assert section.agreement.rate.value == pytest.approx(agree / len(champ))
    expected = wilson(agree, len(champ))
    assert (section.agreement.rate.low, section.agreement.rate.high) == pytest.approx(
        (expected.low, expected.high))
    flips = section.agreement.flips
    assert flips is not None and flips.classes == ["malignant", "benign"]
    assert flips.counts[0][1] == sum(a == "malignant" and b == "benign"
                                     for a, b in zip(champ, cand, strict=True))
    labelled = [(a, b, t) for a, b, t in zip(champ, cand, truth, strict=True) if t is not None]
    accuracy = section.accuracy
    assert accuracy is not None and accuracy.labelled == len(labelled)
    champ_acc = sum(a == t for a, _, t in labelled) / len(labelled)
    cand_acc = sum(b == t for _, b, t in labelled) / len(labelled)
    assert accuracy.champion.accuracy is not None and accuracy.candidate.accuracy is not None
    assert accuracy.champion.accuracy.value == pytest.approx(champ_acc)
    assert accuracy.candidate.accuracy.value == pytest.approx(cand_acc)
    d = np.array([(b == t) - (a == t) for a, b, t in labelled], dtype=float)
    assert accuracy.difference is not None and accuracy.difference.value == pytest.approx(d.mean())
    seq = cs_mean(MeanVariance.of(d))
    assert accuracy.sequential is not None
    assert (accuracy.sequential.low, accuracy.sequential.high) == pytest.approx((seq.low, seq.high))


def test_errors_and_coverage_are_counted_per_request(shadowed: tuple) -> None:
    report, records, _ = shadowed
    section = next(c for c in report.candidates if c.model == "bc-gbt:1")
    errors = sum(by_model(r)["bc-gbt"]["status"] == "error" for r in records)
    assert section.candidate.coverage.asked == len(records)
    assert section.candidate.coverage.error == errors > 0
    assert section.champion.coverage.ok == len(records)


def test_business_value_matches_the_decisions(shadowed: tuple) -> None:
    report, records, feedback = shadowed
    section = next(c for c in report.candidates if c.model == "bc-rf:1")
    business = section.business
    assert business is not None and "refer for biopsy" in business.decision
    flips = acts = rows = 0
    diffs = []
    for r in records:
        m = by_model(r)
        champ = m["bc-logreg"]["output"]["scores"][0][0] >= 0.5
        cand = m["bc-rf"]["output"]["scores"][0][0] >= 0.5
        rows += 1
        flips += champ != cand
        acts += cand
        fb = feedback.get(r["request_id"])
        if fb is not None:
            positive = fb.label == "malignant"
            diffs.append(VALUES[cand, positive] - VALUES[champ, positive])
    assert business.flip_rate.value == pytest.approx(flips / rows)
    assert business.rate_after.value == pytest.approx(acts / rows)
    assert business.value_difference_per_1000 is not None
    assert business.value_difference_per_1000.value == pytest.approx(np.mean(diffs) * 1000)
    assert business.value_difference_per_day is not None  # scaled to a day of traffic


def test_verdicts_name_the_failing_check(shadowed: tuple) -> None:
    report, _, _ = shadowed
    verdicts = {v.candidate: v for v in report.verdicts}
    worse = verdicts["bc-gbt:1"]
    assert worse.verdict == "do_not_promote"
    failed = [r for r in worse.reasons if r.result == "fail"]
    assert {r.name for r in failed} >= {"accuracy", "error_rate"}
    for check in failed:
        assert check.measured is not None and check.bound is not None and check.condition
    better = verdicts["bc-rf:1"]
    assert better.verdict == "ready_to_promote", better.headline
    assert [r.name for r in better.reasons][:2] == ["coverage", "pairs"]  # health first


def test_canary_gets_both_comparisons_and_the_split_is_checked() -> None:
    world = World(records=6000, seed=5, conversion=0.2,
                  candidates=[Candidate("bc-gbt", canary=20, lift=0.25)])
    report, records, feedback = report_of(world, deployment(
        canaries=[{"model": "bc-gbt", "weight": 20}]))
    [section] = report.candidates
    assert section.role == "canary" and section.ab is not None
    arms: dict[str, list[float]] = {"champion": [], "canary": []}
    for r in records:
        fb = feedback.get(r["request_id"])
        arms[r["variant"]].append(fb.outcomes["converted"] if fb else 0.0)  # missing: 0
    srm = section.ab.srm
    assert (srm.champion, srm.canary) == (len(arms["champion"]), len(arms["canary"]))
    assert srm.expected_share == pytest.approx(0.2) and not srm.flagged
    [converted] = section.ab.outcomes
    canary, champ = MeanVariance.of(arms["canary"]), MeanVariance.of(arms["champion"])
    assert converted.canary_mean == pytest.approx(canary.mean)
    expected = difference_of_means(canary, champ)
    assert converted.difference.value == pytest.approx(expected.value)
    assert converted.difference.low == pytest.approx(expected.low)
    assert converted.lift.value is not None and converted.lift.value > 0.1
    names = [r.name for r in section.verdict.reasons]
    assert "sample_ratio" in names and "outcome:converted" in names
    assert section.agreement.pairs > 0  # the paired half: the champion ran as a shadow


def test_a_broken_split_holds_the_verdict() -> None:
    world = World(records=5000, seed=6, candidates=[Candidate("bc-gbt", canary=20)])
    report, _, _ = report_of(world, deployment(canaries=[{"model": "bc-gbt", "weight": 5}]))
    [section] = report.candidates
    assert section.ab is not None and section.ab.srm.flagged
    srm = next(r for r in section.verdict.reasons if r.name == "sample_ratio")
    assert srm.result == "hold" and "split is broken" in srm.sentence
    assert section.verdict.verdict == "needs_more_data"


def test_a_copy_of_the_champion_agrees_on_everything() -> None:
    world = World(records=1500, seed=7, candidates=[Candidate("bc-gbt")])
    report, _, _ = report_of(world, deployment(shadows=[{"model": "bc-gbt"}]))
    [section] = report.candidates
    assert section.agreement.rate is not None and section.agreement.rate.value == 1.0
    assert section.business is not None and section.business.flip_rate.value == 0.0
    assert section.accuracy is not None and section.accuracy.difference is not None
    assert section.accuracy.difference.value == 0.0
    assert "agrees with the champion on 100.0%" in section.verdict.headline


@pytest.mark.parametrize("case", ["no records", "no labels", "one label", "one class"])
def test_edges_give_a_report_not_an_error(case: str) -> None:
    world = World(records={"no records": 0, "one label": 50}.get(case, 300), seed=9,
                  labelled={"no labels": 0.0, "one label": 0.02}.get(case, 1.0),
                  candidates=[Candidate("bc-gbt", flip=0.05)])
    payloads, feedback = generate(world)
    if case == "one label":
        feedback = dict(list(feedback.items())[:1])
    if case == "one class":  # every true label the same class
        feedback = {k: Feedback("benign", v.outcomes, v.received) for k, v in feedback.items()}
    data = loaded(config([deployment(shadows=[{"model": "bc-gbt"}])]))
    report = asyncio.run(build_report(data, "breast-cancer", MemorySource(payloads, feedback)))
    orjson.loads(report.model_dump_json(by_alias=True))  # serialises: no NaN, no inf
    if case == "no records":
        assert report.traffic.records == 0 and report.candidates == []
        assert any("No records" in note for note in report.notes)
        return
    [verdict] = report.verdicts
    assert verdict.headline
    if case == "one class":  # every request benign: AUC undefined, said so, no error
        accuracy = report.candidates[0].accuracy
        assert accuracy is not None and accuracy.champion.auc is not None
        assert accuracy.champion.auc.value is None and accuracy.champion.auc.note
    else:
        assert verdict.verdict == "needs_more_data", verdict.headline
        assert verdict.more_labels


@pytest.mark.parametrize(("rate", "rough"), [(10.0, True), (0.5, False)])
def test_a_day_of_traffic_is_scaled_from_the_window_and_says_how(rate: float,
                                                                rough: bool) -> None:
    # 2,000 records at 10/s span 200 s (less than an hour: rough); at 0.5/s, 4,000 s.
    report, records, _ = report_of(World(records=2000, rate=rate, labelled=0.6, seed=5,
                                         candidates=[Candidate("bc-rf", fix=0.4)]),
                                   deployment(shadows=[{"model": "bc-rf"}]))
    business = report.candidates[0].business
    assert business is not None and business.value_difference_per_day is not None
    span = max(r["ts"] for r in records) - min(r["ts"] for r in records)
    per_day = len(records) / span * 86_400
    assert report.traffic.per_day == pytest.approx(per_day)
    assert f"a day at current traffic ({words.number(per_day, 0)} requests a day" in \
        business.sentence
    assert ("a rough figure, from records that cover" in business.sentence) == rough
    assert business.value_difference_per_day.note == (
        "a rough figure, from records that cover about 3 minutes" if rough else "")
