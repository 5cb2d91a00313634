"""The Parquet export: layout, contents against the JSONL export, schema changes, replacing days."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest
import redis as redis_sync

from gateway.predlog import keys
from gateway.predlog import parquet as archive
from gateway.predlog.export import run_export, run_parquet_export
from gateway.predlog.parquet import DayWriter, export_parquet, label_text, whole_days
from gateway.predlog.record import STREAM_FIELD, PairedRecord, Prediction, encode
from tests.redis_fixture import RedisServer

DEP = "bc"
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
DAY = 86_400.0
CLASSES = ["malignant", "benign"]


def make_record(request_id: str, ts: float, *, rows: int = 1, width: int = 3,
                models: Sequence[str] = ("champ", "cand"), body_id: str | None = None
                ) -> PairedRecord:
    predictions = []
    for i, model in enumerate(models):
        ok = not (i == 1 and request_id.endswith("9"))
        p = 0.2 + 0.1 * i
        output: dict[str, Any] | None = {
            "label": [CLASSES[i % 2]] * rows, "scores": [[p, 1 - p]] * rows,
            "classes": CLASSES} if ok else None
        predictions.append(Prediction(
            role="champion" if i == 0 else "shadow", model=model, version="1", served=i == 0,
            status="ok" if ok else "timeout", latency_ms=1.5 + i, error=None, output=output))
    data = [[round(r + j / 8 + ts % 7, 3) for j in range(width)] for r in range(rows)]
    record = PairedRecord(
        v=1, request_id=request_id, ts=ts, deployment=DEP, revision="rev1",
        key_hash="k" + request_id if rows == 1 else None, bucket=int(ts) % 10_000,
        variant="champion", rows=rows, predictions=predictions,
        inputs={"input": {"datatype": "FP32", "shape": [rows, width], "data": data}})
    if body_id is not None:
        record["id"] = body_id  # type: ignore[typeddict-unknown-key]
    return record


def fill(url: str, records: Sequence[PairedRecord],
         feedback: dict[str, dict[str, Any]] | None = None) -> None:
    with redis_sync.Redis.from_url(url) as client:
        for record in records:
            client.xadd(keys.pairs(DEP), {STREAM_FIELD: encode(record)})
        if feedback:
            client.hset(keys.feedback(DEP), mapping={k: orjson.dumps(v)
                                                     for k, v in feedback.items()})


def table(directory: Path, deployment: str = DEP) -> list[dict[str, Any]]:
    """Every row of the archive, read by column name across files (as any engine would)."""
    files = sorted(str(p) for p in (directory / f"deployment={deployment}").rglob("*.parquet"))
    con = duckdb.connect()
    try:
        rows = con.sql("SELECT * FROM read_parquet(?, union_by_name=true, "
                       "hive_partitioning=false) ORDER BY ts, row", params=[files]).fetchall()
        names = [d[0] for d in con.sql("SELECT * FROM read_parquet(?, union_by_name=true, "
                                       "hive_partitioning=false) LIMIT 0",
                                       params=[files]).description]
    finally:
        con.close()
    return [dict(zip(names, row, strict=True)) for row in rows]


def tree(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def test_the_export_holds_what_the_jsonl_export_holds(redis_server: RedisServer,
                                                       tmp_path: Path) -> None:
    records = [make_record(f"r{i}", T0 + 600 * i, rows=1 + i % 3) for i in range(10)]
    records.append(make_record("r10", T0 + 7000, body_id="v2-10"))
    feedback = {"r0": {"label": "benign", "ts": T0 + 50, "received": T0 + 60},
                "r1": {"label": ["benign", "malignant"], "ts": T0 + 700, "received": T0 + 800},
                "r3": {"label": 1, "ts": T0 + 2000, "received": T0 + 2000,
                       "outcomes": {"converted": 1, "revenue": 2.5}},
                "v2-10": {"label": "malignant", "ts": T0 + 7100, "received": T0 + 7200}}
    fill(redis_server.url, records, feedback)
    jsonl = tmp_path / "out.jsonl"
    assert run_export(redis_server.url, DEP, None, None, "jsonl", str(jsonl)) == 11
    result = run_parquet_export(redis_server.url, DEP, None, None, str(tmp_path / "pq"))
    assert result.records == 11 and sum(result.written.values()) == 20
    rows = table(tmp_path / "pq")
    assert len(rows) == 20
    by_id = {(row["request_id"], row["row"]): row for row in rows}
    for line in jsonl.read_bytes().splitlines():
        record = orjson.loads(line)
        for i in range(record["rows"]):
            row = by_id[record["request_id"], i]
            for name in ("ts", "revision", "variant", "bucket", "key_hash", "rows"):
                assert row[name] == record[name], name
            assert row["id"] == record.get("id")
            for p in record["predictions"]:
                key = f"m.{p['model']}:{p['version']}"
                assert (row[f"{key}.status"], row[f"{key}.role"], row[f"{key}.latency_ms"]) == (
                    p["status"], p["role"], p["latency_ms"])
                output = p["output"] or {"label": [None], "scores": [[None, None]]}
                label = output["label"][i] if p["output"] else None
                assert row[f"{key}.label"] == label
                assert [row[f"{key}.score.{c}"] for c in CLASSES] == (
                    output["scores"][i] if p["output"] else [None, None])
            assert [row[f"in.input.{j}"] for j in range(3)] == pytest.approx(
                record["inputs"]["input"]["data"][i], rel=1e-6)
    assert by_id["r0", 0]["label"] == "benign" and by_id["r0", 0]["label_ts"] == T0 + 50
    assert [by_id["r1", i]["label"] for i in range(2)] == ["benign", "malignant"]
    assert (by_id["r3", 0]["label"], by_id["r3", 0]["label_value"]) == ("1", 1.0)
    assert by_id["r3", 0]["label_received"] == T0 + 2000  # feedback values with outcomes
    assert by_id["r10", 0]["label"] == "malignant"  # joined on the V2 body id
    assert by_id["r2", 0]["label_received"] is None  # no feedback
    assert by_id["r9", 0]["m.cand:1.status"] == "timeout"


def test_outcomes_and_label_spellings() -> None:
    rows = archive.Rows().of(make_record("r0", T0, rows=2),
                             {"label": "benign", "ts": 1.0, "received": 2.0,
                              "outcomes": {"converted": True, "revenue": 7, "note": "x"}})
    assert [(r["label"], r["outcome.converted"], r["outcome.revenue"]) for r in rows] == [
        (None, 1.0, 7.0), (None, 1.0, 7.0)]  # one label for two rows belongs to neither
    assert "outcome.note" not in rows[0]
    assert [label_text(v) for v in ("a", 3, 2.0, True, None)] == [
        ("a", None), ("3", 3.0), ("2.0", 2.0), ("true", None), (None, None)]


def test_inputs_are_named_by_the_champions_features_when_they_fit() -> None:
    rows = archive.Rows(["radius", "texture", "area"])
    named = rows.of(make_record("r0", T0, rows=2), None)
    assert [named[1][f"in.{f}"] for f in ("radius", "texture", "area")] == pytest.approx(
        [1 + T0 % 7, 1.125 + T0 % 7, 1.25 + T0 % 7], rel=1e-6)
    other = rows.of(make_record("r1", T0, width=4), None)
    assert "in.radius" not in other[0] and "in.input.3" in other[0]


def test_days_are_hive_partitions_of_bounded_row_groups(tmp_path: Path) -> None:
    records = [make_record(f"r{i}", T0 + 3600 * i) for i in range(30)]  # 22:13 + 30 h
    writer = DayWriter(tmp_path, DEP, row_group=4)
    assert writer.add((r, None) for r in records) == 30
    result = writer.commit()
    assert result.written == {"2023-11-14": 2, "2023-11-15": 24, "2023-11-16": 4}
    assert tree(tmp_path) == [f"deployment=bc/date={day}/part-0.parquet"
                              for day in ("2023-11-14", "2023-11-15", "2023-11-16")]
    middle = pq.ParquetFile(tmp_path / "deployment=bc" / "date=2023-11-15" / "part-0.parquet")
    assert middle.metadata.num_row_groups == 6
    assert middle.schema_arrow.metadata[b"shadowgate.layout"] == b"1"
    ts = middle.read(columns=["ts"]).column("ts").to_pylist()
    assert min(ts) >= 1_700_006_400.0 > max(ts) - DAY  # 2023-11-15T00:00Z
    assert middle.schema_arrow.names[:4] == ["request_id", "id", "ts", "revision"]


def test_a_model_added_later_gets_a_new_part_and_nulls_before(tmp_path: Path) -> None:
    writer = DayWriter(tmp_path, DEP, row_group=2)
    writer.add((make_record(f"a{i}", T0 + 10 * i), None) for i in range(3))
    writer.add((make_record(f"b{i}", T0 + 100 + 10 * i, models=("champ", "cand", "new")), None)
               for i in range(3))
    writer.commit()
    day = tmp_path / "deployment=bc" / "date=2023-11-14"
    assert sorted(p.name for p in day.iterdir()) == ["part-0.parquet", "part-1.parquet"]
    assert "m.new:1.status" not in pq.read_schema(day / "part-0.parquet").names
    rows = table(tmp_path)
    assert [r["m.new:1.status"] for r in rows] == [None] * 3 + ["ok"] * 3


def test_re_exporting_a_day_replaces_its_files_whole(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def export(records: list[PairedRecord]) -> None:
        writer = DayWriter(tmp_path, DEP)
        writer.add((r, None) for r in records)
        writer.commit()

    export([make_record(f"r{i}", T0 - 3600 + i) for i in range(3)])
    old = tmp_path / "deployment=bc" / "date=2023-11-14" / "part-0.parquet"
    with old.open("rb") as reader:  # a reader that opened the old file keeps reading it
        exchanges: list[tuple[Path, Path]] = []
        real = archive._exchange

        def spy(a: Path, b: Path) -> bool:
            exchanges.append((a, b))
            return real(a, b)

        monkeypatch.setattr(archive, "_exchange", spy)
        export([make_record(f"s{i}", T0 - 3600 + i) for i in range(4)])
        assert pq.ParquetFile(reader).metadata.num_rows == 3
    assert len(exchanges) == 1 and exchanges[0][1].name == "date=2023-11-14"
    assert [r["request_id"] for r in table(tmp_path)] == ["s0", "s1", "s2", "s3"]
    assert tree(tmp_path) == ["deployment=bc/date=2023-11-14/part-0.parquet"]
    monkeypatch.setattr(archive, "_exchange", lambda a, b: False)  # no renameat2: two renames
    export([make_record(f"t{i}", T0 - 3600 + i) for i in range(5)])
    assert [r["request_id"] for r in table(tmp_path)] == [f"t{i}" for i in range(5)]
    assert tree(tmp_path) == ["deployment=bc/date=2023-11-14/part-0.parquet"]


async def test_a_failed_export_leaves_the_archive_as_it_was(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(redis_server.url, [make_record(f"r{i}", T0 + i) for i in range(3)])
    redis = archive.Redis.from_url(redis_server.url)
    try:
        await export_parquet(redis, DEP, tmp_path, since=None, until=None)
        before = tree(tmp_path)

        async def broken(*args: Any, **kwargs: Any) -> AsyncIterator[list[PairedRecord]]:
            yield [make_record("x0", T0 + 5), make_record("x1", T0 + DAY)]
            raise redis_sync.ConnectionError("gone")

        monkeypatch.setattr(archive, "iter_pages", broken)
        with pytest.raises(redis_sync.ConnectionError):
            await export_parquet(redis, DEP, tmp_path, since=None, until=None)
    finally:
        await redis.aclose()
    assert tree(tmp_path) == before
    assert [p.name for p in (tmp_path / "deployment=bc").iterdir()] == ["date=2023-11-14"]
    assert [r["request_id"] for r in table(tmp_path)] == ["r0", "r1", "r2"]


def test_a_day_the_stream_no_longer_holds_whole_is_kept(redis_server: RedisServer,
                                                         tmp_path: Path) -> None:
    fill(redis_server.url, [make_record(f"r{i}", T0 - 7200 + i) for i in range(6)])
    out = str(tmp_path)
    assert run_parquet_export(redis_server.url, DEP, None, None, out).written == {
        "2023-11-14": 6}
    with redis_sync.Redis.from_url(redis_server.url) as client:
        client.xtrim(keys.pairs(DEP), maxlen=2, approximate=False)  # retention trimmed the day
    result = run_parquet_export(redis_server.url, DEP, None, None, out)
    assert (result.written, result.kept) == ({}, {"2023-11-14": 6})
    assert len(table(tmp_path)) == 6


def test_the_window_is_widened_to_whole_utc_days(redis_server: RedisServer,
                                                 tmp_path: Path) -> None:
    assert whole_days(T0, T0 + 1) == (1_699_920_000.0, 1_700_006_400.0)
    assert whole_days(None, 1_700_006_400.0) == (None, 1_700_006_400.0)
    fill(redis_server.url, [make_record("early", 1_699_920_000.0 + 5), make_record("late", T0),
                            make_record("next", T0 + DAY)])
    result = run_parquet_export(redis_server.url, DEP, "2023-11-14T20:00:00Z",
                                "2023-11-14T23:00:00Z", str(tmp_path))
    assert (result.records, result.written) == (2, {"2023-11-14": 2})


def test_a_bad_deployment_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected letters, digits"):
        run_parquet_export("redis://127.0.0.1:1/0", "../up", None, None, str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_days_beyond_the_open_limit_are_closed_and_continued_in_a_new_part(
        tmp_path: Path) -> None:
    writer = DayWriter(tmp_path, DEP, max_open=1)  # a replay: days interleaved
    for i in range(6):
        writer.add([(make_record(f"r{i}", T0 + (i % 2) * DAY), None)])
    assert writer.commit().written == {"2023-11-14": 3, "2023-11-15": 3}
    assert tree(tmp_path) == [f"deployment=bc/date={day}/part-{n}.parquet"
                              for day in ("2023-11-14", "2023-11-15") for n in range(3)]
    assert sorted(r["request_id"] for r in table(tmp_path)) == [f"r{i}" for i in range(6)]
