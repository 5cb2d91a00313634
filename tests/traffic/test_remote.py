"""Remote V2 backends, against a real second gateway started by the test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from gateway.app import create_app
from gateway.settings import Settings
from tests.helpers import (
    MODELS,
    ROOT,
    GatewayProcess,
    LiveServer,
    config,
    harness,
    loaded,
    v2_body,
)
from tests.traffic.remote_checks import assert_answers_like, post_in_batches


def upstream_app(models: list[dict[str, Any]] | None = None) -> Any:
    data = config([], models=models)
    return create_app(Settings(log="off"), loaded=loaded(data))


def remote(name: str, url: str, timeout_ms: float = 2000, **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": "1",
            "remote": {"url": url, "model": extra.pop("model", "bc-gbt"),
                       "timeout_ms": timeout_ms}, **extra}


def test_remote_champion_and_shadow_match_local(holdout: list[dict]) -> None:
    rows = [r["features"] for r in holdout[:5]]
    with LiveServer(upstream_app()) as up:
        models = [{"name": "bc-gbt", "version": "1"}, remote("far-gbt", up.url),
                  remote("far-rf", up.url, model="bc-rf")]
        data = config([{"name": "breast-cancer", "champion": "far-gbt",
                        "shadows": [{"model": "far-rf"}, {"model": "bc-gbt"}]}], models=models)
        with harness(data) as h:
            far = h.client.post("/v2/models/breast-cancer/infer", json=v2_body(rows))
            near = h.client.post("/v2/models/bc-gbt/infer", json=v2_body(rows))
            assert far.status_code == near.status_code == 200
            assert far.headers["x-shadowgate-model"] == "far-gbt"
            np.testing.assert_allclose(far.json()["outputs"][1]["data"],
                                       near.json()["outputs"][1]["data"], atol=1e-6)
            h.wait_records(1)
            preds = h.sink.records[0]["predictions"]
            assert [p["status"] for p in preds] == ["ok", "ok", "ok"]
            # The remote gateway's metadata carries class labels, so outputs read as labels.
            assert len(preds[1]["output"]["label"]) == 5
            assert set(preds[1]["output"]["label"]) <= {"malignant", "benign"}


def test_remote_champion_down_is_502_and_slow_is_504(holdout: list[dict]) -> None:
    rows = [holdout[0]["features"]]
    slow = [{"name": "slow", "version": "1", "python": "tests.backends:fake",
             "options": {"delay": 0.5}}, {"name": "bc-gbt", "version": "1"}]
    with LiveServer(upstream_app(slow)) as up:
        models = [remote("far", up.url), remote("far-slow", up.url, timeout_ms=100, model="slow")]
        data = config([{"name": "breast-cancer", "champion": "far"},
                       {"name": "slow-dep", "champion": "far-slow"}], models=models)
        with harness(data) as h:
            assert h.client.post("/v2/models/breast-cancer/infer",
                                 json=v2_body(rows)).status_code == 200
            r = h.client.post("/v2/models/slow-dep/infer", json=v2_body(rows))
            assert r.status_code == 504, r.text
            assert "did not answer within 100 ms" in r.json()["error"]
            up.__exit__()  # the upstream goes away
            r = h.client.post("/v2/models/breast-cancer/infer", json=v2_body(rows))
            assert r.status_code == 502, r.text
            assert "far" in r.json()["error"]
            assert h.metric("model_infer_request_failure_total", model_name="far",
                            model_version="1", reason="bad_gateway") == 1


def test_remote_shadow_failure_is_a_record_entry(holdout: list[dict]) -> None:
    rows = [holdout[0]["features"]]
    with LiveServer(upstream_app()) as up:
        models = [{"name": "bc-logreg", "version": "1"}, remote("far", up.url)]
        data = config([{"name": "breast-cancer", "champion": "bc-logreg",
                        "shadows": [{"model": "far"}]}], models=models)
        with harness(data) as h:
            up.__exit__()
            r = h.client.post("/v2/models/breast-cancer/infer", json=v2_body(rows))
            assert r.status_code == 200
            h.wait_records(1)
            shadow = h.sink.records[0]["predictions"][1]
            assert shadow["status"] == "error" and "far" in shadow["error"]
            assert h.metric("shadowgate_shadow_results_total", model_name="far",
                            model_version="1", status="error") == 1


@pytest.mark.slow
def test_another_gateway_process_as_a_remote_shadow_of_the_bundled_deployment(
        tmp_path: Path, holdout: list[dict]) -> None:
    upstream = tmp_path / "upstream.yaml"
    upstream.write_text(yaml.safe_dump(config([], models=[{"name": "bc-logreg"}])))
    env = {"SHADOWGATE_STATE_DIR": str(tmp_path / "state"), "SHADOWGATE_LOG": "off"}
    with GatewayProcess(upstream, env) as gw:
        data = yaml.safe_load((ROOT / "config" / "example.yaml").read_text())
        data["model_repository"] = str(MODELS)
        data["models"].append({"name": "far-lr", "remote": {
            "url": gw.url, "model": "bc-logreg", "timeout_ms": 10_000}})
        data["deployments"][0]["shadows"].append({"model": "far-lr", "timeout_ms": 10_000})
        sizes = [1] * 20 + [7, 2]
        with harness(data) as h:
            post_in_batches(h, holdout, sizes)
            h.wait_records(len(sizes), timeout=30)
    for record in h.sink.records:
        champion, *shadows = record["predictions"]
        assert [p["model"] for p in shadows] == ["bc-gbt", "bc-rf", "far-lr"]
        assert_answers_like(champion, shadows[-1], record["rows"])
