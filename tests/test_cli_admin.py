"""shadowgate rollout / reload against a real gateway's admin API."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.app import create_app
from gateway.cli import main
from gateway.settings import Settings
from tests.helpers import LiveServer, config, poll
from tests.redis_fixture import RedisServer

ADMIN = "admin-token-0123456789"


@pytest.mark.slow
def test_rollout_commands_and_reload(tmp_path: Path, redis_server: RedisServer,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(config([{
        "name": "breast-cancer", "champion": "bc-logreg",
        "shadows": [{"model": "bc-rf"}],
        "rollout": {"candidate": "bc-gbt", "evaluate_every_s": 0.2,
                    "stages": [{"kind": "shadow", "min_duration_s": 3600}]}}])))
    settings = Settings(config=path, redis_url=redis_server.url, state_dir=tmp_path / "s",
                        admin_token=ADMIN, watch_config=False)
    with LiveServer(create_app(settings)) as server:
        base = ["--url", server.url, "--token", ADMIN]
        poll(lambda: main(["rollout", "status", *base]) == 0
             and "in shadow" in capsys.readouterr().out, 20, "the rollout to start")
        assert main(["rollout", "pause", *base, "--deployment", "breast-cancer"]) == 2
        assert "--reason" in capsys.readouterr().err
        assert main(["rollout", "pause", *base, "--deployment", "breast-cancer",
                     "--reason", "checking"]) == 0
        assert "paused in shadow (bc-gbt:1)" in capsys.readouterr().out
        assert main(["rollout", "promote", *base, "--deployment", "breast-cancer",
                     "--reason", "done", "--write-config"]) == 0
        assert "now names bc-gbt:1 as the champion" in capsys.readouterr().out
        written = yaml.safe_load(path.read_text())["deployments"][0]
        assert written["champion"] == "bc-gbt:1" and "rollout" not in written
        assert written["shadows"] == [{"model": "bc-rf"}]
        assert (tmp_path / "gw.yaml.bak").exists()
        assert main(["reload", *base]) == 0
        assert "applied" in capsys.readouterr().out
        assert main(["rollout", "status", *base, "--token", "wrong-token-0123456789"]) == 1
        assert "403" in capsys.readouterr().err
    assert main(["reload", "--url", server.url, "--token", ADMIN]) == 1  # gateway gone
    assert "cannot reach the gateway" in capsys.readouterr().err
