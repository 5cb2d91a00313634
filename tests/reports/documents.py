"""Report documents for the rendering tests: built by the real analysis from synthetic
records (tests/analysis/synthetic.py), plus edge cases the synthetic gateway cannot produce
(a model without classes, every optional section missing, hostile names)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gateway.analysis.document import (
    Agreement,
    Interval,
    Latency,
    ModelAccuracy,
    Report,
)
from gateway.analysis.report import build_report
from tests.analysis.synthetic import Candidate, MemorySource, World, generate
from tests.helpers import config, loaded

NOW = 1_800_010_000.0
DEPLOYMENT: dict[str, Any] = {
    "name": "breast-cancer", "champion": "bc-logreg",
    "canaries": [{"model": "bc-rf", "weight": 10}], "shadows": [{"model": "bc-gbt"}],
    "decision": {"positive_class": "malignant", "threshold": 0.5, "action": "refer for biopsy",
                 "value_unit": "EUR", "values": {"true_positive": 40, "false_positive": -15,
                                                 "false_negative": -100}},
    "outcomes": [{"name": "converted", "better": "higher", "missing": 0}],
    "segments": [{"feature": "mean radius", "bins": 4}],
}
WORSE_SHADOW = Candidate("bc-gbt", flip=0.1)
BETTER_CANARY = Candidate("bc-rf", fix=0.5, canary=10)


def build(world: World, deployment: dict[str, Any] | None = None) -> Report:
    payloads, feedback = generate(world)
    lc = loaded(config([deployment or DEPLOYMENT]))
    return asyncio.run(build_report(lc, "breast-cancer", MemorySource(payloads, feedback),
                                    now=NOW))


def sample() -> Report:
    """A shadow that is worse and a canary that is ready, with every section."""
    return build(World(records=2000, candidates=[WORSE_SHADOW, BETTER_CANARY]))


def no_records() -> Report:
    return build(World(records=0))


def no_labels() -> Report:
    return build(World(records=600, labelled=0.0, candidates=[WORSE_SHADOW, BETTER_CANARY]))


def one_candidate() -> Report:
    deployment = {k: v for k, v in DEPLOYMENT.items() if k not in ("canaries", "outcomes")}
    return build(World(records=300, labelled=0.2, candidates=[Candidate("bc-gbt")]),
                 deployment)


def without_classes(report: Report) -> Report:
    """A regression candidate: agreement is a correlation, accuracy a mean absolute error."""
    iv = Interval(value=0.93, low=0.91, high=0.95, confidence=0.95)
    diff = Interval(value=0.012, low=-0.002, high=0.026, confidence=0.95)
    c = report.candidates[0]
    regression = c.model_copy(update={
        "agreement": Agreement(pairs=c.agreement.pairs, score_difference=diff, correlation=iv),
        "accuracy": c.accuracy.model_copy(update={  # type: ignore[union-attr]
            "champion": ModelAccuracy(mean_abs_error=Interval(
                value=1.2, low=1.1, high=1.3, confidence=0.95)),
            "candidate": ModelAccuracy(mean_abs_error=Interval(
                value=1.25, low=1.14, high=1.36, confidence=0.95)),
            "difference": None, "sequential": None, "mcnemar_p": None,
            "auc_difference": None, "labels_needed": None}),
        "business": None, "drift": None, "segments": None, "ab": None})
    return report.model_copy(update={"candidates": [regression],
                                     "verdicts": [regression.verdict]})


def bare(report: Report) -> Report:
    """Every optional section missing and every nullable number null."""
    c = report.candidates[0]
    none = Interval(value=None, low=None, high=None, confidence=0.95, note="too few data")
    empty = Latency(n=0, p50_ms=None, p95_ms=None, p99_ms=None, note="no answers")
    models = [m.model_copy(update={"latency": empty, "coverage": m.coverage.model_copy(
        update={"ok_rate": none, "error_rate": none})}) for m in (c.champion, c.candidate)]
    checks = [r.model_copy(update={"measured": None, "bound": None})
              for r in c.verdict.reasons]
    verdict = c.verdict.model_copy(update={"reasons": checks, "verdict": "needs_more_data",
                                           "more_labels": 1234, "more_hours": 5.5})
    stripped = c.model_copy(update={
        "verdict": verdict, "champion": models[0], "candidate": models[1],
        "agreement": Agreement(pairs=0), "accuracy": None, "business": None, "drift": None,
        "segments": None, "ab": None})
    traffic = report.traffic.model_copy(update={
        "first": None, "last": None, "per_second": None, "per_day": None,
        "label_delay_p50_s": None, "label_delay_p95_s": None})
    return report.model_copy(update={
        "candidates": [stripped], "verdicts": [verdict], "drift": [], "traffic": traffic,
        "revision": None, "notes": ["A note with <b>markup</b> | and a pipe."]})


HOSTILE = {
    "bc-gbt:1": "<script>alert(1)</script>|gbt",
    "malignant": '<b>"mal"|ig*n_ant</b>',
    "mean radius": "$radius$ & <img src=http://example.invalid/x.png>",
    "converted": "conv|erted",
    "breast-cancer": "bc`#[x](http://example.invalid)",
}


def hostile(report: Report) -> Report:
    """Model, class, feature, outcome and deployment names that are HTML and Markdown."""
    text = report.model_dump_json(by_alias=True)
    for old, new in HOSTILE.items():
        text = text.replace(old, json.dumps(new)[1:-1])
    return Report.model_validate_json(text)
