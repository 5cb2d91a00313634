"""shadowgate export --format parquet: messages and exit codes, feature names from the config."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
import redis as redis_sync
import yaml

from gateway import cli
from gateway.predlog import keys
from gateway.predlog.record import STREAM_FIELD, encode
from tests import helpers
from tests.analysis.synthetic import Candidate, World, generate
from tests.helpers import ROOT
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
    code = cli.main(["export", "--deployment", "other", "--format", "parquet", "--output",
                     "arc", "--redis-url", redis_server.url])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "exported 0 record(s) to arc: no records in this window (nothing written)" in err


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


def test_report_from_the_parquet_archive_equals_the_report_from_redis(
        redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world = World(records=400, seed=2, start=T0, candidates=[Candidate("bc-gbt", flip=0.1)])
    payloads, feedback = generate(world)
    with redis_sync.Redis.from_url(redis_server.url) as client:
        pipe = client.pipeline(transaction=False)
        for payload in payloads:
            pipe.xadd(keys.pairs("breast-cancer"), {STREAM_FIELD: payload})
        for rid, fb in feedback.items():
            pipe.hset(keys.feedback("breast-cancer"), rid, orjson.dumps(
                {"label": fb.label, "outcomes": dict(fb.outcomes), "ts": fb.received,
                 "received": fb.received}))
        pipe.execute()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(helpers.config([{
        "name": "breast-cancer", "champion": "bc-logreg", "shadows": [{"model": "bc-gbt"}]}])))
    archive = tmp_path / "archive"
    assert cli.main(["export", "--deployment", "breast-cancer", "--format", "parquet",
                     "--output", str(archive), "--config", str(config),
                     "--redis-url", redis_server.url]) == 0
    base = ["report", "--config", str(config), "--deployment", "breast-cancer", "--format",
            "json", "--since", "2023-11-14T22:13:30Z"]
    assert cli.main([*base, "--redis-url", redis_server.url, "-o", str(tmp_path / "r.json")]) == 0
    assert cli.main([*base, "--parquet", str(archive), "-o", str(tmp_path / "p.json")]) == 0
    from_redis = orjson.loads((tmp_path / "r.json").read_bytes())
    from_parquet = orjson.loads((tmp_path / "p.json").read_bytes())
    assert from_parquet["window"]["source"] == "parquet"
    for report in (from_redis, from_parquet):
        del report["generated_at"], report["window"]["source"]
    assert 0 < from_parquet["traffic"]["records"] < 400
    assert from_parquet == from_redis


def test_report_from_parquet_names_what_is_wrong(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = ROOT / "config" / "example.yaml"
    base = ["report", "--config", str(config), "--deployment", "breast-cancer", "--parquet"]
    assert cli.main([*base, str(tmp_path)]) == 2
    assert "no Parquet archive of 'breast-cancer'" in capsys.readouterr().err
    day = tmp_path / "deployment=breast-cancer" / "date=2023-11-14"
    day.mkdir(parents=True)
    (day / "part-0.parquet").write_bytes(b"not parquet")
    assert cli.main([*base, str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"shadowgate report: --parquet {tmp_path}: ")
