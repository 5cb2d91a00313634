"""Live agreement metrics: counted per shadow batch, exported like any Prometheus series."""

from __future__ import annotations

from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from gateway.metrics import observe_counts
from tests.analysis.test_known_candidates import MODELS
from tests.helpers import config, harness


def test_observe_counts_matches_one_observe_per_value() -> None:
    values = np.random.default_rng(2).uniform(-1.5, 1.5, 500)
    buckets = (-0.5, 0.0, 0.5, 1.0)
    one, bulk = CollectorRegistry(), CollectorRegistry()
    a = Histogram("h", "h", buckets=buckets, registry=one)
    b = Histogram("h", "h", buckets=buckets, registry=bulk)
    for v in values:
        a.observe(v)
    counts = np.bincount(np.searchsorted(buckets, values, side="left"), minlength=5)
    observe_counts(b, counts, float(values.sum()))

    def samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
        return [(s.name, s.labels, round(s.value, 9)) for m in registry.collect()
                for s in m.samples if not s.name.endswith("_created")]

    assert samples(one) == samples(bulk)
    assert b"h_bucket" in generate_latest(bulk)


def test_live_agreement_per_candidate(holdout: list[dict[str, Any]]) -> None:
    data = config([{
        "name": "breast-cancer", "champion": "bc-logreg",
        "shadows": [{"model": "copy"}, {"model": "flipper"}],
        "decision": {"positive_class": "malignant", "threshold": 0.5},
    }], models=MODELS)
    rows = [r["features"] for r in holdout]
    with harness(data) as h:
        for row in rows:
            assert h.client.post("/predict", json={"instances": [row]}).status_code == 200
        h.wait_records(len(rows))

        def metric(name: str, candidate: str) -> float:
            return h.metric(name, deployment="breast-cancer", candidate=candidate)

        assert metric("shadowgate_agreement_rows_total", "copy:1") == len(rows)
        assert metric("shadowgate_agreement_same_total", "copy:1") == len(rows)
        assert metric("shadowgate_decision_flips_total", "copy:1") == 0
        flipped = [rec["predictions"][2]["output"]["label"][0]
                   != rec["predictions"][0]["output"]["label"][0] for rec in h.sink.records]
        assert 0 < sum(flipped) < len(rows) / 4
        same = metric("shadowgate_agreement_same_total", "flipper:1")
        assert same == len(rows) - sum(flipped)
        # Flipping a binary label swaps its scores, so the decision flips with it.
        assert metric("shadowgate_decision_flips_total", "flipper:1") == sum(flipped)
        assert metric("shadowgate_score_difference_count", "flipper:1") == len(rows)
        # A copy's scores differ only by float noise between batched and single-row calls.
        def bucket(le: str) -> float:
            return h.metric("shadowgate_score_difference_bucket", deployment="breast-cancer",
                            candidate="copy:1", le=le)

        assert bucket("-0.01") == 0 and bucket("0.01") == len(rows)
