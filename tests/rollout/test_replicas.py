"""Two gateway processes sharing one Redis: one stage for both, one controller acting, and a
take-over within the lock's expiry when the acting process dies."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
import yaml

from gateway.predlog import keys
from tests.helpers import GatewayProcess, config, poll, raw_posts
from tests.redis_fixture import RedisServer

pytestmark = pytest.mark.slow
TTL_S = 3.0


def rollout_config(tmp_path: Path) -> Path:
    data = config([{
        "name": "breast-cancer", "champion": "bc-logreg", "routing": {"header": "x-user-id"},
        "guardrails": {"min_pairs": 20, "require_labels": False},
        "rollout": {"candidate": "bc-gbt", "evaluate_every_s": 0.5, "label_wait_s": 0,
                    "stages": [{"kind": "shadow", "min_duration_s": 1, "min_samples": 20},
                               {"kind": "canary", "weight": 50, "min_duration_s": 3600,
                                "min_samples": 10**9}]},
    }])
    path = tmp_path / "rollout.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def canaries(url: str) -> dict[str, Any]:
    meta = httpx.get(f"{url}/v2/models/breast-cancer", timeout=5).json()
    return dict(meta["parameters"]["canaries"])


def lock_holder(client: redis.Redis) -> str | None:
    raw = client.get(keys.rollout_lock())
    return None if raw is None else raw.decode()


def test_replicas_share_the_stage_and_one_controller_acts(
        tmp_path: Path, redis_server: RedisServer, holdout: list[dict[str, Any]]) -> None:
    path = rollout_config(tmp_path)
    env = {"SHADOWGATE_REDIS_URL": redis_server.url, "SHADOWGATE_ROLLOUT_LOCK_TTL_S": str(TTL_S),
           "SHADOWGATE_WATCH_CONFIG": "false"}
    body = orjson.dumps({"instances": [holdout[0]["features"]]})
    client = redis_server.client()
    with GatewayProcess(path, {**env, "SHADOWGATE_STATE_DIR": str(tmp_path / "a")}) as a, \
            GatewayProcess(path, {**env, "SHADOWGATE_STATE_DIR": str(tmp_path / "b")}) as b:
        assert a.proc is not None and b.proc is not None
        poll(lambda: lock_holder(client) is not None, 20, "a controller to take the lock")
        holder = lock_holder(client)
        assert holder is not None
        acting, other = (a, b) if f":{a.proc.pid}:" in holder else (b, a)
        assert f":{acting.proc.pid}:" in holder  # type: ignore[union-attr]
        # Traffic through both; the shadow stage passes and the rollout moves to the canary.
        for gw in (a, b):
            asyncio.run(raw_posts(gw.port, "/predict", body,
                                  [{"x-user-id": f"u{i}"} for i in range(60)]))
        for gw in (a, b):
            poll(lambda gw=gw: canaries(gw.url) == {"bc-gbt:1": 50.0}, 20,
                 f"{gw.url} to route the canary stage")
        entries = client.xrange(keys.rollout_history("breast-cancer"))
        actors = {orjson.loads(fields[b"d"]).get("replica") for _, fields in entries}
        assert actors == {holder}, actors  # only the lock holder recorded decisions
        # The acting process dies: the other takes over within the lock's expiry.
        acting.proc.kill()  # type: ignore[union-attr]
        acting.proc.wait(10)  # type: ignore[union-attr]
        died = time.monotonic()
        poll(lambda: (lock_holder(client) or "").find(f":{other.proc.pid}:") >= 0,  # type: ignore[union-attr]
             TTL_S + 10, "the other controller to take over")
        assert time.monotonic() - died <= TTL_S + 2.5  # expiry plus a controller tick
        assert canaries(other.url) == {"bc-gbt:1": 50.0}  # and routing stays where it was
