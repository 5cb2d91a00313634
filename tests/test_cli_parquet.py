"""shadowgate export --format parquet: messages and exit codes, feature names from the config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis as redis_sync

from gateway import cli
from gateway.predlog import keys
from gateway.predlog.record import STREAM_FIELD, encode
from tests.predlog.test_parquet import DEP, T0, fill, make_record, table, tree
from tests.redis_fixture import RedisServer


def test_cli_exports_parquet(redis_server: RedisServer, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHADOWGATE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no config/example.yaml here
    fill(redis_server.url, [make_record(f"r{i}", T0 + i) for i in range(3)])
    code = cli.main(["export", "--deployment", DEP, "--format", "parquet", "--output", "arc",
                     "--redis-url", redis_server.url])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "input columns are named in.<tensor>.<j>" in err
    assert "exported 3 record(s) to arc: 2023-11-14 (3 rows)" in err
    assert tree(tmp_path / "arc") == ["deployment=bc/date=2023-11-14/part-0.parquet"]


def test_cli_names_inputs_by_the_configs_champion_card(redis_server: RedisServer,
                                                       tmp_path: Path) -> None:
    from gateway.analysis.parquet import champion_features
    from gateway.config.load import load
    from tests.helpers import ROOT

    config = ROOT / "config" / "example.yaml"
    features = champion_features(load(config), "breast-cancer")
    record = make_record("r0", T0, width=30)
    record["deployment"] = "breast-cancer"
    with redis_sync.Redis.from_url(redis_server.url) as client:
        client.xadd(keys.pairs("breast-cancer"), {STREAM_FIELD: encode(record)})
    code = cli.main(["export", "--deployment", "breast-cancer", "--format", "parquet",
                     "--output", str(tmp_path), "--redis-url", redis_server.url,
                     "--config", str(config)])
    assert code == 0
    row = table(tmp_path, "breast-cancer")[0]
    assert row[f"in.{features[29]}"] == pytest.approx(29 / 8 + T0 % 7)


@pytest.mark.parametrize(("args", "message"), [
    (["--output", "{file}"], "exists and is not a directory"),
    ([], "give --output DIR"),
    (["--output", "-"], "give --output DIR"),
    (["--output", "{dir}", "--since", "yesterday"], "expected an ISO 8601 time"),
    (["--output", "{dir}", "--since", "1h", "--until", "2h"], "must be before --until"),
    (["--output", "{dir}", "--config", "{missing}"], "config "),
    (["--output", "{dir}", "--config", "{example}"], "deployment 'bc' is not in the config"),
])
def test_cli_rejects_bad_arguments_before_starting_anything(
        args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
        ) -> None:
    from tests.helpers import ROOT

    (tmp_path / "file").write_text("")
    names = {"file": tmp_path / "file", "dir": tmp_path / "out", "missing": tmp_path / "no.yaml",
             "example": ROOT / "config" / "example.yaml"}
    argv = ["export", "--deployment", DEP, "--format", "parquet",
            "--redis-url", "redis://127.0.0.1:1/0", *[a.format(**names) for a in args]]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("shadowgate export: ") and message in err
    assert sorted(os.listdir(tmp_path)) == ["file"]
