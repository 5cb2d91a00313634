from __future__ import annotations

from tests.helpers import config, harness, v2_body


def test_v2_infer_on_deployment_answers_with_champion(holdout: list[dict]) -> None:
    rows = [holdout[0]["features"]]
    with harness(config()) as h:
        r = h.client.post("/v2/models/breast-cancer/infer", json=v2_body(rows, id="r1"))
        assert r.status_code == 200, r.text
        assert r.headers["x-shadowgate-model"] == "bc-logreg"
        assert r.json()["id"] == "r1"
        h.wait_records(1)
        assert h.sink.records[0]["predictions"][0]["model"] == "bc-logreg"
