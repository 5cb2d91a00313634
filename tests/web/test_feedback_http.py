"""POST /feedback as an attacker would try it: no token, a wrong one, one for another scope,
overwriting a label, labels outside the classes, orphans, bursts, forged log lines."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from gateway.predlog import keys
from tests.helpers import Harness, config, poll, redis_harness, v2_body
from tests.redis_fixture import RedisServer

FEEDBACK_TOKEN = "fb-" + "x" * 29
REPORTS_TOKEN = "rp-" + "y" * 29
DEP = "breast-cancer"
PAST = 1_700_000_000.0  # long before the orphan window


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    with redis_server.client() as c:
        yield c


@pytest.fixture
def h(redis_server: RedisServer, tmp_path: Path) -> Iterator[Harness]:
    with redis_harness(config(), redis_server.url, tmp_path,
                       feedback_token=FEEDBACK_TOKEN, reports_token=REPORTS_TOKEN) as running:
        yield running


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


AUTH = bearer(FEEDBACK_TOKEN)


def served(h: Harness, client: redis.Redis, row: list[float], **body: Any) -> str:
    """One request to the deployment; returns its x-request-id once its record is indexed."""
    r = h.client.post(f"/v2/models/{DEP}/infer", json=v2_body([row], **body))
    assert r.status_code == 200, r.text
    request_id = r.headers["x-request-id"]
    poll(lambda: client.zscore(keys.ids(DEP), request_id) is not None, 10, "record indexed")
    return request_id


def stored(client: redis.Redis, key: str) -> dict[str, Any] | None:
    raw = client.hget(keys.feedback(DEP), key)
    return None if raw is None else dict(orjson.loads(raw))


@pytest.fixture(scope="module")
def row(holdout: list[dict[str, Any]]) -> list[float]:
    return holdout[0]["features"]


def test_a_token_is_required_and_checked(h: Harness, client: redis.Redis,
                                         row: list[float]) -> None:
    rid = served(h, client, row)
    label = {"request_id": rid, "label": "benign"}
    r = h.client.post("/feedback", json=label)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "bearer token" in r.json()["error"] and "'feedback'" in r.json()["error"]
    for headers, status, words in [
        (bearer("fb-" + "z" * 29), 403, "not valid"),
        (bearer(REPORTS_TOKEN), 403, "does not grant the 'feedback' scope"),
        ({"authorization": FEEDBACK_TOKEN}, 401, "expected 'Bearer <token>'"),
        ({"authorization": f"Basic {FEEDBACK_TOKEN}"}, 401, "expected 'Bearer <token>'"),
        ({"authorization": "Bearer "}, 401, "expected 'Bearer <token>'"),
    ]:
        r = h.client.post("/feedback", json=label, headers=headers)
        assert r.status_code == status, (headers, r.text)
        assert words in r.json()["error"]
        assert FEEDBACK_TOKEN not in r.text and REPORTS_TOKEN not in r.text
    assert stored(client, rid) is None
    r = h.client.post("/feedback", json=label, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json() == {"stored": 1, "ignored": 0, "corrected": 0, "orphans": 0}
    assert stored(client, rid)["by"] == "SHADOWGATE_FEEDBACK_TOKEN"  # type: ignore[index]
    assert h.metric("shadowgate_auth_refused_total", scope="feedback", reason="scope") == 1
    assert h.metric("shadowgate_auth_refused_total", scope="feedback", reason="missing") == 1


def test_loopback_without_a_token_is_the_readme_demo(redis_server: RedisServer,
                                                     tmp_path: Path, client: redis.Redis,
                                                     row: list[float]) -> None:
    with redis_harness(config(), redis_server.url, tmp_path) as open_gw:
        rid = served(open_gw, client, row)
        r = open_gw.client.post("/feedback", json={"request_id": rid, "label": "benign"})
        assert r.status_code == 200, r.text
    assert stored(client, rid)["by"] == "anonymous"  # type: ignore[index]


def test_a_non_loopback_gateway_without_a_token_refuses_feedback(
        redis_server: RedisServer, tmp_path: Path) -> None:
    # TestClient binds nothing: "0.0.0.0" only tells the gateway where it would listen.
    with redis_harness(config(), redis_server.url, tmp_path, host="0.0.0.0") as gw:
        r = gw.client.post("/feedback", json={"request_id": "r1", "label": "benign"})
        assert r.status_code == 403
        message = r.json()["error"]
        assert "non-loopback" in message and "SHADOWGATE_FEEDBACK_TOKEN" in message
        assert "SHADOWGATE_TOKENS_FILE" in message
    with redis_harness(config(), redis_server.url, tmp_path, host="0.0.0.0",
                       feedback_token=FEEDBACK_TOKEN) as gw:
        r = gw.client.post("/feedback", json={"request_id": "r1", "label": "benign"},
                           headers=AUTH)
        assert r.status_code == 200, r.text


def test_an_overwrite_without_correction_is_ignored_and_counted(
        h: Harness, client: redis.Redis, row: list[float]) -> None:
    rid = served(h, client, row)
    assert h.client.post("/feedback", json={"request_id": rid, "label": "benign"},
                         headers=AUTH).json()["stored"] == 1
    r = h.client.post("/feedback", json={"request_id": rid, "label": "malignant"}, headers=AUTH)
    assert r.json() == {"stored": 0, "ignored": 1, "corrected": 0, "orphans": 0}
    assert stored(client, rid)["label"] == "benign"  # type: ignore[index]
    assert h.metric("shadowgate_feedback_ignored_total", deployment=DEP,
                    reason="duplicate") == 1
    r = h.client.post("/feedback", json={"request_id": rid, "label": 0, "correction": True},
                      headers=AUTH)
    assert r.json() == {"stored": 0, "ignored": 0, "corrected": 1, "orphans": 0}
    assert stored(client, rid)["label"] == "malignant"  # type: ignore[index]
    assert h.metric("shadowgate_feedback_corrections_total", deployment=DEP) == 1


@pytest.mark.parametrize("label", ["foo", "Benign", 2, -1, 0.5, True, "", None, [0]])
def test_a_label_outside_the_classes_is_refused(h: Harness, client: redis.Redis,
                                                label: Any) -> None:
    r = h.client.post("/feedback", json={"request_id": "r1", "label": label}, headers=AUTH)
    assert r.status_code == 400, r.text
    assert "label" in r.json()["error"]
    if label not in (None, True, [0]):
        assert "('malignant', 'benign')" in r.json()["error"]
    assert client.hlen(keys.feedback(DEP)) == 0


def test_orphans_past_the_window_are_refused(h: Harness, client: redis.Redis) -> None:
    r = h.client.post("/feedback", json={"request_id": "never-served", "label": "benign",
                                         "ts": PAST}, headers=AUTH)
    assert r.status_code == 404
    assert "no record for 'never-served'" in r.json()["error"]
    assert "orphan window" in r.json()["error"]
    r = h.client.post("/feedback", headers=AUTH, json={"items": [
        {"request_id": "on-its-way", "label": "benign"},
        {"request_id": "never-served", "label": "benign", "ts": PAST},
        {"request_id": "also-on-its-way", "outcomes": {"converted": 1}}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["stored"], body["orphans"]) == (2, 2)
    assert [x["index"] for x in body["refused"]] == [1]
    assert "orphan window" in body["refused"][0]["error"]
    assert stored(client, "never-served") is None
    assert h.metric("shadowgate_feedback_orphans_total", deployment=DEP) == 2


def test_a_body_id_names_the_request_too(h: Harness, client: redis.Redis,
                                         row: list[float]) -> None:
    served(h, client, row, id="order-17")
    poll(lambda: client.zscore(keys.ids(DEP), "order-17") is not None, 10, "body id indexed")
    r = h.client.post("/feedback", headers=AUTH, json={
        "id": "order-17", "outcomes": {"converted": 1, "revenue": 12.5}, "ts": PAST})
    assert r.json() == {"stored": 1, "ignored": 0, "corrected": 0, "orphans": 0}  # logged
    assert stored(client, "order-17")["outcomes"] == {  # type: ignore[index]
        "converted": 1, "revenue": 12.5}


@pytest.mark.slow
def test_a_burst_of_100k_labels_is_limited_and_storage_stays_bounded(
        redis_server: RedisServer, tmp_path: Path, client: redis.Redis) -> None:
    data = config([{"name": DEP, "champion": "bc-logreg", "retention": {"max_len": 5000}}])
    with redis_harness(data, redis_server.url, tmp_path, feedback_token=FEEDBACK_TOKEN,
                       feedback_rate=10, feedback_burst=20_000) as gw:
        statuses = []
        for post in range(10):
            items = [{"request_id": f"p{post}-{i}", "label": i % 2} for i in range(10_000)]
            r = gw.client.post("/feedback", json={"items": items}, headers=AUTH)
            statuses.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["retry-after"]) >= 1
                assert "rate limit" in r.json()["error"] and "10 labels/s" in r.json()["error"]
        assert statuses == [200, 200] + [429] * 8
        assert gw.metric("shadowgate_rate_limited_total", limit="feedback",
                         by="SHADOWGATE_FEEDBACK_TOKEN") == 8
    assert client.hlen(keys.feedback(DEP)) == 5000
    assert client.zcard(keys.feedback_received(DEP)) == 5000


def test_a_newline_in_a_json_key_is_one_quoted_log_line(
        h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    body = b'{"request_id": "r1", "label": 1, "x\\nINFO gateway.web: forged line": 1}'
    with caplog.at_level(logging.INFO):
        r = h.client.post("/feedback", content=body, headers={
            **AUTH, "content-type": "application/json"})
    assert r.status_code == 400
    assert "unknown field" in r.json()["error"]
    lines = [rec.getMessage() for rec in caplog.records]
    assert [line for line in lines if "forged" in line] == [
        line for line in lines if "-> 400" in line]
    assert all("\n" not in line and "\r" not in line for line in lines)
