"""shadowgate report: from the Redis stream to a file, with clear errors."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml

from gateway.cli import main
from gateway.predlog import keys
from tests.analysis.synthetic import Candidate, World, generate
from tests.helpers import config
from tests.redis_fixture import RedisServer


@pytest.fixture
def filled(redis_server: RedisServer, tmp_path: Path) -> Path:
    world = World(records=400, seed=2, start=1_800_000_000.0,
                  candidates=[Candidate("bc-gbt", flip=0.1)])
    payloads, feedback = generate(world)
    with redis_server.client() as client:
        pipe = client.pipeline(transaction=False)
        for payload in payloads:
            pipe.xadd(keys.pairs("breast-cancer"), {"r": payload})
        for rid, fb in feedback.items():
            pipe.hset(keys.feedback("breast-cancer"), rid, orjson.dumps(
                {"label": fb.label, "outcomes": dict(fb.outcomes), "ts": fb.received,
                 "received": fb.received}))
        pipe.execute()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config([{"name": "breast-cancer", "champion": "bc-logreg",
                                            "shadows": [{"model": "bc-gbt"}]}])))
    return path


def test_report_writes_each_format(filled: Path, redis_server: RedisServer,
                                   tmp_path: Path) -> None:
    base = ["report", "--config", str(filled), "--deployment", "breast-cancer",
            "--redis-url", redis_server.url]
    out = tmp_path / "r.json"
    assert main([*base, "--format", "json", "-o", str(out)]) == 0
    report = orjson.loads(out.read_bytes())
    assert report["schema"] == "shadowgate.report/1" and report["traffic"]["records"] == 400
    assert report["verdicts"][0]["candidate"] == "bc-gbt:1"
    md = tmp_path / "r.md"
    assert main([*base, "--format", "md", "-o", str(md), "--candidate", "bc-gbt"]) == 0
    assert "bc-gbt:1" in md.read_text()
    html = tmp_path / "r.html"
    assert main([*base, "-o", str(html), "--since", "2027-01-01", "--until", "2028-01-01"]) == 0
    assert html.read_text().startswith("<!DOCTYPE html>")
    assert not list(tmp_path.glob("*.partial"))


def test_report_errors_are_clear(filled: Path, redis_server: RedisServer,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    base = ["report", "--config", str(filled), "--redis-url", redis_server.url]
    assert main([*base, "--deployment", "nope"]) == 2
    assert "--deployment: 'nope' is not in" in capsys.readouterr().err
    assert main([*base, "--deployment", "breast-cancer", "--since", "yesterday"]) == 2
    assert "expected an ISO 8601 time" in capsys.readouterr().err
    assert main(["report", "--config", "/nonexistent.yaml", "--deployment", "x"]) == 1
    assert "cannot read config" in capsys.readouterr().err
    redis_server.stop()
    assert main([*base, "--deployment", "breast-cancer", "--format", "json"]) == 1
    assert "shadowgate report:" in capsys.readouterr().err
