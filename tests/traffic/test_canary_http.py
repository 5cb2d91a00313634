"""The canary split over real HTTP, through separately started gateway processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
import yaml

from tests.helpers import GatewayProcess, config, raw_posts

KEYS = [f"user-{i}" for i in range(20_000)]


def canary_config(tmp_path: Path, weight: float) -> Path:
    data = config([{
        "name": "breast-cancer", "champion": "bc-logreg",
        "canaries": [{"model": "bc-gbt", "weight": weight}],
        "routing": {"header": "x-user-id"},
    }])
    path = tmp_path / f"canary-{weight}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def variants(port: int, keys: list[str], row: list[float]) -> dict[str, str]:
    body = orjson.dumps({"instances": [row]})
    answers = asyncio.run(raw_posts(port, "/predict", body, [{"x-user-id": k} for k in keys]))
    out = {}
    for key, (status, headers, content) in zip(keys, answers, strict=True):
        assert status == 200, content
        assert orjson.loads(content)["variant"] == headers["x-shadowgate-variant"]
        out[key] = headers["x-shadowgate-variant"]
    return out


@pytest.mark.slow
def test_sticky_canary_split_across_processes(tmp_path: Path, holdout: list[dict]) -> None:
    row = holdout[0]["features"]
    env = {"SHADOWGATE_LOG": "memory", "SHADOWGATE_STATE_DIR": str(tmp_path / "state")}
    with GatewayProcess(canary_config(tmp_path, 10), env) as first:
        at10 = variants(first.port, KEYS, row)
        again = variants(first.port, KEYS[:2000], row)
    share = sum(v == "canary" for v in at10.values()) / len(KEYS)
    assert 0.09 <= share <= 0.11, share
    assert all(at10[k] == v for k, v in again.items())
    # A separately started process assigns every key the same way ...
    with GatewayProcess(canary_config(tmp_path, 10), env) as second:
        other = variants(second.port, KEYS[:3000], row)
    assert other == {k: at10[k] for k in KEYS[:3000]}
    # ... and raising the weight moves users only from champion to canary.
    with GatewayProcess(canary_config(tmp_path, 20), env) as third:
        at20 = variants(third.port, KEYS[:5000], row)
    assert all(at20[k] == "canary" for k in at20 if at10[k] == "canary")
    assert sum(v == "canary" for v in at20.values()) > sum(
        at10[k] == "canary" for k in at20)
