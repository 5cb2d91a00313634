"""The admin API and GET /reports: tokens, reloads, people's actions on rollouts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.predlog import keys
from gateway.settings import Settings
from tests.helpers import config, poll
from tests.redis_fixture import RedisServer

ADMIN = "admin-token-0123456789"
REPORTS = "reports-token-0123456789"
AUTH = {"authorization": f"Bearer {ADMIN}"}


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def rollout_config(**rollout: Any) -> dict[str, Any]:
    return config([{"name": "breast-cancer", "champion": "bc-logreg",
                    "rollout": {"candidate": "bc-gbt", "stages": [
                        {"kind": "shadow"}, {"kind": "canary", "weight": 10}], **rollout}}])


@pytest.fixture
def gateway(tmp_path: Path, redis_server: RedisServer) -> Any:
    path = write(tmp_path / "gw.yaml", rollout_config())
    settings = Settings(config=path, redis_url=redis_server.url, state_dir=tmp_path / "s",
                        admin_token=ADMIN, reports_token=REPORTS, watch_config=False,
                        rollout_controller=False)
    with TestClient(create_app(settings)) as client:
        client.portal.call(client.app.state.runtime.controller.run_once)  # type: ignore[attr-defined,union-attr]
        yield client, path


def test_admin_needs_its_token(gateway: Any, tmp_path: Path) -> None:
    client, _ = gateway
    assert client.get("/admin/status").status_code == 401
    wrong = client.get("/admin/status", headers={"authorization": f"Bearer {REPORTS}"})
    assert wrong.status_code == 403 and "admin" in wrong.json()["error"]
    status = client.get("/admin/status", headers=AUTH).json()
    assert status["rollouts"]["breast-cancer"]["state"]["stage_name"] == "shadow"
    assert status["acting"] is True and status["replica"] == status["controller"]
    settings = Settings(config=Path("config/example.yaml"), log="memory")
    with TestClient(create_app(settings)) as open_client:  # no admin token: disabled
        r = open_client.get("/admin/status", headers=AUTH)
        assert r.status_code == 403 and "no admin token" in r.json()["error"]


def test_people_act_on_a_rollout_with_a_reason(gateway: Any) -> None:
    client, _ = gateway
    url = "/admin/rollouts/breast-cancer"
    r = client.post(f"{url}/pause", json={}, headers=AUTH)
    assert r.status_code == 400 and "reason" in r.json()["error"]
    r = client.post(f"{url}/pause", json={"reason": "release freeze"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["state"]["status"] == "paused"
    r = client.post(f"{url}/pause", json={"reason": "again"}, headers=AUTH)
    assert r.status_code == 409 and "cannot pause a rollout that is paused" in r.json()["error"]
    r = client.post(f"{url}/resume", json={"reason": "freeze over"}, headers=AUTH)
    assert r.json()["state"]["status"] == "running"
    r = client.post(f"{url}/promote", json={"reason": "looks good"}, headers=AUTH)
    assert r.json()["state"]["status"] == "promoted" and "champion" in r.json()["config_change"]
    assert client.post(f"{url}/frobnicate", json={"reason": "x"}, headers=AUTH).status_code == 404
    history = client.get(url, headers=AUTH).json()["history"]
    who = "SHADOWGATE_ADMIN_TOKEN"  # the token's name
    assert [(h["action"], h["by"], h["reason"]) for h in history if h.get("manual")] == [
        ("pause", who, "release freeze"), ("resume", who, "freeze over"),
        ("promote", who, "looks good")]
    # The promotion routes at once on this replica: the candidate answers as the champion.
    r = client.post("/predict", json={"instances": [[1.0] * 30]})
    assert r.headers["x-shadowgate-model"] == "bc-gbt"


def test_reload_applies_a_valid_file_and_refuses_an_invalid_one(gateway: Any) -> None:
    client, path = gateway
    data = rollout_config()
    data["deployments"][0]["shadows"] = [{"model": "bc-rf"}]
    write(path, data)
    r = client.post("/admin/reload", headers=AUTH)
    assert r.status_code == 200 and r.json()["result"] == "applied"
    revision = r.json()["revision"]
    meta = client.get("/v2/models/breast-cancer").json()["parameters"]
    assert "bc-rf:1" in meta["shadows"]
    data["deployments"][0]["champion"] = "ghost"
    write(path, data)
    r = client.post("/admin/reload", headers=AUTH)
    assert r.status_code == 422 and r.json()["result"] == "invalid"
    assert any("deployments[0].champion" in e for e in r.json()["errors"])
    assert client.get("/admin/status", headers=AUTH).json()["revision"] == revision


def test_reports_endpoint_by_accept_and_token(gateway: Any, redis_server: RedisServer) -> None:
    client, _ = gateway
    for i in range(30):
        client.post("/predict", json={"instances": [[float(i % 7)] * 30]})
    # the records reach Redis when the writer's batch does: the report reads them from there
    sync = redis_server.client()
    poll(lambda: sync.xlen(keys.pairs("breast-cancer")) >= 30, what="the 30 records")
    assert client.get("/reports/breast-cancer").status_code == 401
    auth = {"authorization": f"Bearer {REPORTS}"}
    r = client.get("/reports/breast-cancer", headers={**auth, "accept": "application/json"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = orjson.loads(r.content)
    assert body["schema"] == "shadowgate.report/1" and body["deployment"] == "breast-cancer"
    assert body["traffic"]["records"] == 30
    rollout = body["rollout"]  # the rollout's state and decisions are part of the report
    assert (rollout["candidate"], rollout["status"], rollout["stage"]) == (
        "bc-gbt:1", "running", "shadow")
    assert [d["action"] for d in rollout["decisions"]][:1] == ["start"]
    html = client.get("/reports/breast-cancer?since=1h", headers=auth)
    assert html.headers["content-type"].startswith("text/html") and "<svg" in html.text
    assert "Rollout of bc-gbt:1" in html.text
    assert client.get("/reports/nope", headers=auth).status_code == 404
    bad = client.get("/reports/breast-cancer?since=yesterday", headers=auth)
    assert bad.status_code == 400 and "since" in bad.json()["error"]
