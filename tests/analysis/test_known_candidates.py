"""Candidates of known quality, through the real gateway and a real Redis, to the verdict.

The bundled held-out rows go through /predict several times (each time a new request id),
the labels are posted through /feedback, and the report is read back from the stream: a copy
of the champion agrees on everything, a candidate that flips 10% of the labels is rejected once
enough labels have arrived, one that corrects the champion's mistakes is ready to promote.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis
from starlette.testclient import TestClient

from gateway.analysis.report import build_report
from gateway.analysis.sources import RedisSource
from gateway.app import create_app
from gateway.predlog import keys
from gateway.settings import Settings
from tests.helpers import MODEL_NAMES, config, loaded, poll
from tests.redis_fixture import RedisServer

PASSES = 5

MODELS = [{"name": n, "version": "1"} for n in MODEL_NAMES] + [
    {"name": "copy", "python": "tests.backends:variant", "options": {"mode": "copy"}},
    {"name": "flipper", "python": "tests.backends:variant",
     "options": {"mode": "flip", "share": 0.1}},
    {"name": "better", "python": "tests.backends:variant", "options": {"mode": "better"}},
]


@pytest.mark.slow
def test_known_candidates_get_the_verdict_they_deserve(
        redis_server: RedisServer, holdout: list[dict[str, Any]], tmp_path: Any) -> None:
    data = loaded(config([{
        "name": "breast-cancer", "champion": "bc-logreg",
        "shadows": [{"model": "copy"}, {"model": "flipper"}, {"model": "better"}],
    }], models=MODELS))
    settings = Settings(redis_url=redis_server.url, state_dir=tmp_path / "state")
    ids = []
    with TestClient(create_app(settings, loaded=data)) as client:
        for n in range(PASSES):
            for i, row in enumerate(holdout):
                rid = f"p{n}-r{i}"
                r = client.post("/predict", json={"instances": [row["features"]]},
                                headers={"x-request-id": rid})
                assert r.status_code == 200
                ids.append((rid, row["label_name"]))
        sync = redis_server.client()
        poll(lambda: sync.xlen(keys.pairs("breast-cancer")) >= len(ids), 30, "records")
        r = client.post("/feedback", json={"items": [
            {"request_id": rid, "label": label} for rid, label in ids]})
        assert r.status_code == 200, r.text

    async def report() -> Any:
        redis = Redis.from_url(redis_server.url)
        try:
            return await build_report(data, "breast-cancer", RedisSource(
                redis, "breast-cancer", since=None, until=None))
        finally:
            await redis.aclose()

    result = asyncio.run(report())
    verdicts = {v.candidate: v for v in result.verdicts}
    sections = {c.model: c for c in result.candidates}
    assert result.traffic.records == len(ids) and result.traffic.labelled == len(ids)

    copy = sections["copy:1"]
    assert copy.agreement.rate is not None and copy.agreement.rate.value == 1.0
    assert copy.accuracy is not None and copy.accuracy.difference is not None
    assert copy.accuracy.difference.value == 0.0
    assert "agrees with the champion on 100.0% of requests" in verdicts["copy:1"].headline

    flipper = verdicts["flipper:1"]
    assert flipper.verdict == "do_not_promote", flipper.headline
    accuracy = next(r for r in flipper.reasons if r.name == "accuracy")
    assert accuracy.result == "fail" and accuracy.measured is not None
    assert accuracy.measured < -0.05 and accuracy.bound == -0.01

    better = verdicts["better:1"]
    assert better.verdict == "ready_to_promote", better.headline
    assert sections["better:1"].accuracy is not None
    assert sections["better:1"].accuracy.candidate.accuracy is not None
    assert sections["better:1"].accuracy.candidate.accuracy.value == 1.0
