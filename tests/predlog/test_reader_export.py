from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis as redis_sync
from redis.asyncio import Redis

from gateway.predlog import keys
from gateway.predlog.export import CSV_SAMPLE, export, iso_utc, parse_time, run_export
from gateway.predlog.feedback import FeedbackItem, store_feedback
from gateway.predlog.reader import ScanStats, iter_joined, iter_records
from gateway.predlog.record import STREAM_FIELD, PairedRecord, Prediction, encode
from tests.redis_fixture import RedisServer

DEP = "bc"
T0 = 1_700_000_000.0  # in the past: the scan starts at stream id (since - 1 h)
MODELS = (("champ", "1"), ("cand", "2"))


@pytest.fixture
async def r(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


def make_record(request_id: str, ts: float, *, rows: int = 1,
                models: Sequence[tuple[str, str]] = MODELS,
                classes: list[str] | None = None) -> PairedRecord:
    """A valid record: the first model answered, the others ran as shadows."""
    predictions = []
    for i, (model, version) in enumerate(models):
        output: dict[str, Any] = {"label": ["benign" if i == 0 else "malignant"] * rows,
                                  "scores": [[0.75 - i / 2, 0.25 + i / 2]] * rows}
        if classes is not None:
            output["classes"] = classes
        predictions.append(Prediction(
            role="champion" if i == 0 else "shadow", model=model, version=version,
            served=i == 0, status="ok", latency_ms=1.5 + i, error=None, output=output))
    return PairedRecord(v=1, request_id=request_id, ts=ts, deployment=DEP, revision="rev1",
                        key_hash=None, bucket=42, variant="champion", rows=rows,
                        predictions=predictions, inputs=None)


async def add(r: Redis, records: Sequence[PairedRecord]) -> None:
    pipe = r.pipeline(transaction=False)
    for record in records:
        pipe.xadd(keys.pairs(DEP), {STREAM_FIELD: encode(record)})
    await pipe.execute()


async def ids(r: Redis, **kwargs: Any) -> list[str]:
    return [rec["request_id"] async for rec in iter_records(r, DEP, **kwargs)]


# -- reader --

async def test_replayed_records_are_yielded_once(r: Redis) -> None:
    first = [make_record(f"r{i}", T0 + i) for i in range(5)]
    await add(r, [*first, first[1], first[3], first[1]])
    stats = ScanStats()
    assert await ids(r, since=None, until=None, stats=stats) == ["r0", "r1", "r2", "r3", "r4"]
    assert (stats.entries, stats.duplicates, stats.records) == (8, 3, 5)


async def test_filters_by_record_ts_not_stream_id(r: Redis) -> None:
    now = time.time()
    await add(r, [make_record(f"r{i}", now - 100 + i) for i in range(10)])
    # Replayed from the spool two hours late: newest stream ids, old ts.
    await add(r, [make_record("late-in", now - 95.5), make_record("late-out", now - 7200)])
    got = await ids(r, since=now - 95, until=now - 92)
    assert got == ["r5", "r6", "r7"]  # half-open: ts == until is out
    assert await ids(r, since=now - 96, until=None) == [
        "r4", "r5", "r6", "r7", "r8", "r9", "late-in"]
    assert await ids(r, since=None, until=now - 98) == ["r0", "r1", "late-out"]


async def test_scan_starts_at_since_minus_skew(r: Redis) -> None:
    now = time.time()
    # A stream id far older than its record's ts only happens with a badly skewed clock.
    await r.xadd(keys.pairs(DEP), {STREAM_FIELD: encode(make_record("skewed", now))}, id="1000-0")
    await add(r, [make_record("normal", now)])
    assert await ids(r, since=now - 10, until=None) == ["normal"]
    assert await ids(r, since=now - 10, until=None, skew_s=None) == ["skewed", "normal"]


async def test_pages_across_more_than_a_thousand_entries(r: Redis) -> None:
    await add(r, [make_record(f"r{i}", T0 + i) for i in range(2345)])
    stats = ScanStats()
    got = await ids(r, since=None, until=None, stats=stats)
    assert got == [f"r{i}" for i in range(2345)]
    assert (stats.pages, stats.entries) == (3, 2345)
    small = ScanStats()
    assert len(await ids(r, since=T0 + 10, until=T0 + 110, page=7, stats=small)) == 100
    assert small.pages == 2345 // 7 + 1


async def test_skips_garbage_entries(r: Redis) -> None:
    key = keys.pairs(DEP)
    await add(r, [make_record("r0", T0)])
    no_id: dict[str, Any] = {**make_record("x", T0)}
    del no_id["request_id"]
    bad_ts: dict[str, Any] = {**make_record("y", T0), "ts": "soon"}
    for fields in ({STREAM_FIELD: b"not json"}, {STREAM_FIELD: b'{"v": 2}'}, {b"other": b"1"},
                   {STREAM_FIELD: orjson.dumps(no_id)}, {STREAM_FIELD: orjson.dumps(bad_ts)}):
        await r.xadd(key, fields)  # type: ignore[arg-type]
    await add(r, [make_record("r1", T0 + 1)])
    stats = ScanStats()
    assert await ids(r, since=T0, until=None, stats=stats) == ["r0", "r1"]
    assert stats.undecodable == 5


async def test_missing_stream_yields_nothing(r: Redis) -> None:
    assert await ids(r, since=None, until=None) == []


async def test_labels_arriving_later_join(r: Redis) -> None:
    await add(r, [make_record(f"r{i}", T0 + i) for i in range(5)])
    await store_feedback(r, [FeedbackItem(DEP, "r1", "malignant", T0 + 50)], T0 + 60)
    joined = [(rec["request_id"], fb) async for rec, fb in iter_joined(
        r, DEP, since=None, until=None, page=2)]
    assert joined[0] == ("r0", None)
    assert joined[1] == ("r1", {"label": "malignant", "outcomes": {}, "ts": T0 + 50,
                                "received": T0 + 60})
    await store_feedback(r, [FeedbackItem(DEP, "r4", 1, T0 + 70)], T0 + 70)
    stats = ScanStats()
    labelled = {rec["request_id"]: fb["label"] async for rec, fb in iter_joined(
        r, DEP, since=None, until=None, stats=stats) if fb is not None}
    assert labelled == {"r1": "malignant", "r4": 1}
    assert stats.labelled == 2


# -- export --

async def test_export_jsonl_to_text_and_binary(r: Redis) -> None:
    records = [make_record(f"r{i}", T0 + i) for i in range(3)]
    await add(r, [*records, records[0]])
    await store_feedback(r, [FeedbackItem(DEP, "r2", True, T0 + 9)], T0 + 10)
    text, binary = io.StringIO(), io.BytesIO()
    assert await export(r, DEP, since=None, until=None, fmt="jsonl", out=text,
                        progress=True) == 3
    assert await export(r, DEP, since=None, until=None, fmt="jsonl", out=binary,
                        progress=False) == 3
    assert text.getvalue().encode() == binary.getvalue()
    lines = [orjson.loads(line) for line in binary.getvalue().splitlines()]
    for line, record in zip(lines, records, strict=True):
        assert line.pop("feedback") == (
            {"label": True, "outcomes": {}, "ts": T0 + 9} if record["request_id"] == "r2"
            else None)
        assert line == record


async def test_export_csv(r: Redis) -> None:
    await add(r, [make_record("r0", T0 + 0.25, rows=2, classes=["benign", "malignant"]),
                  make_record("r1", T0 + 1, models=MODELS[:1])])
    await store_feedback(r, [FeedbackItem(DEP, "r0", "malignant", T0)], T0)
    out = io.StringIO()
    assert await export(r, DEP, since=None, until=None, fmt="csv", out=out, progress=False) == 2
    reader = csv.DictReader(io.StringIO(out.getvalue()))
    assert reader.fieldnames == [
        "request_id", "ts", "deployment", "revision", "variant", "bucket", "row",
        "served_model", "served_version",
        "champ:1_status", "champ:1_latency_ms", "champ:1_label",
        "champ:1_score_benign", "champ:1_score_malignant",
        "cand:2_status", "cand:2_latency_ms", "cand:2_label",
        "cand:2_score_benign", "cand:2_score_malignant", "feedback_label"]
    rows = list(reader)
    assert [(row["request_id"], row["row"]) for row in rows] == [("r0", "0"), ("r0", "1"),
                                                                  ("r1", "0")]
    first = rows[1]
    assert first["ts"] == "2023-11-14T22:13:20.250Z" == iso_utc(T0 + 0.25)
    assert (first["deployment"], first["revision"], first["variant"], first["bucket"]) == (
        DEP, "rev1", "champion", "42")
    assert (first["served_model"], first["served_version"]) == ("champ", "1")
    assert (first["champ:1_status"], first["champ:1_latency_ms"], first["champ:1_label"]) == (
        "ok", "1.5", "benign")
    assert float(first["cand:2_score_malignant"]) == 0.75
    assert first["feedback_label"] == "malignant"
    assert rows[2]["cand:2_status"] == rows[2]["cand:2_score_benign"] == ""
    assert rows[2]["feedback_label"] == ""


async def test_csv_cells_a_spreadsheet_would_run_are_neutralised(r: Redis) -> None:
    """Callers choose request ids and labels; a PM opens the export in a spreadsheet."""
    evil = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]
    records = [make_record(text, T0 + i) for i, text in enumerate(evil)]
    records[0]["predictions"][0]["output"]["label"] = ["=HYPERLINK(\"http://x\")"]
    await add(r, records)
    await store_feedback(r, [FeedbackItem(DEP, evil[0], "=1+1", T0)], T0)
    out = io.StringIO()
    await export(r, DEP, since=None, until=None, fmt="csv", out=out, progress=False)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [row["request_id"] for row in rows] == ["'" + text for text in evil]
    assert rows[0]["champ:1_label"] == "'=HYPERLINK(\"http://x\")"
    assert rows[0]["feedback_label"] == "'=1+1"
    assert rows[0]["champ:1_latency_ms"] == "1.5"  # numbers stay numbers
    assert rows[0]["bucket"] == "42" and float(rows[0]["cand:2_score_0"]) == 0.25
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row


async def test_csv_columns_come_from_the_first_records(r: Redis) -> None:
    await add(r, [make_record(f"r{i}", T0 + i, models=MODELS[:1]) for i in range(CSV_SAMPLE)])
    await add(r, [make_record("new", T0 + CSV_SAMPLE, models=[*MODELS[:1], ("late", "9")])])
    out = io.BytesIO()
    n = await export(r, DEP, since=None, until=None, fmt="csv", out=out, progress=False, page=300)
    assert n == CSV_SAMPLE + 1
    rows = list(csv.reader(io.StringIO(out.getvalue().decode())))
    assert len(rows) == 1 + n and rows[0][-1] == "feedback_label"
    assert not any(c.startswith("late:9") for c in rows[0])
    assert rows[0][-3:-1] == ["champ:1_score_0", "champ:1_score_1"]  # no classes: indices
    assert rows[-1][0] == "new" and len(rows[-1]) == len(rows[0])


async def test_export_reads_the_stream_page_by_page(r: Redis) -> None:
    await add(r, [make_record(f"r{i}", T0 + i) for i in range(420)])
    await r.config_set("slowlog-log-slower-than", 0)  # log every command with its arguments
    await r.config_set("slowlog-max-len", 10_000)
    await r.slowlog_reset()
    try:
        for fmt in ("jsonl", "csv"):
            n = await export(r, DEP, since=None, until=None, fmt=fmt, out=io.BytesIO(),
                             progress=False, page=50)
            assert n == 420
        log = await r.slowlog_get(10_000)
    finally:
        await r.config_set("slowlog-log-slower-than", 10_000)
    commands = [entry["command"].split() for entry in log]
    xranges = [c for c in commands if c[0].upper() == b"XRANGE"]
    assert len(xranges) == 2 * 9  # 8 full pages of 50 and a last one of 20, per export
    assert all(c[-2:] == [b"COUNT", b"50"] for c in xranges)
    hmgets = [c for c in commands if c[0].upper() == b"HMGET"]
    assert len(hmgets) == 2 * 9


# -- times and the CLI entry --

def test_parse_time() -> None:
    now = T0
    assert parse_time("2026-11-20", now) == datetime(2026, 11, 20, tzinfo=UTC).timestamp()
    assert parse_time("2026-11-20T10:00:00Z", now) == datetime(
        2026, 11, 20, 10, tzinfo=UTC).timestamp()
    assert parse_time("2026-11-20T12:00:00+02:00", now) == parse_time("2026-11-20T10:00", now)
    assert parse_time("24h", now) == now - 86_400
    assert parse_time("7d", now) == now - 7 * 86_400
    assert parse_time("30m", now) == now - 1800
    assert parse_time(" 1.5h ", now) == now - 5400
    for bad in ("yesterday", "10x", "-5h", "", "2026-13-01"):
        with pytest.raises(ValueError, match="expected an ISO 8601 time"):
            parse_time(bad, now)


def _fill(url: str, records: Sequence[PairedRecord]) -> None:
    with redis_sync.Redis.from_url(url) as client:
        for record in records:
            client.xadd(keys.pairs(DEP), {STREAM_FIELD: encode(record)})


def test_run_export_to_file(redis_server: RedisServer, tmp_path: Path) -> None:
    now = time.time()
    _fill(redis_server.url, [make_record("old", now - 3 * 86_400), make_record("new", now - 60),
                             make_record("future", now + 3600)])
    path = tmp_path / "out.jsonl"
    assert run_export(redis_server.url, DEP, "2d", "0s", "jsonl", str(path)) == 1
    assert [orjson.loads(line)["request_id"] for line in path.read_bytes().splitlines()] == [
        "new"]
    since = datetime.fromtimestamp(now - 4 * 86_400, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert run_export(redis_server.url, DEP, since, None, "csv", str(tmp_path / "a.csv")) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "out.jsonl"]


def test_run_export_to_stdout(redis_server: RedisServer,
                              capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    _fill(redis_server.url, [make_record("r0", T0)])
    assert run_export(redis_server.url, DEP, None, None, "jsonl", None) == 1
    assert orjson.loads(capsysbinary.readouterr().out)["request_id"] == "r0"


def test_run_export_rejects_bad_arguments(tmp_path: Path) -> None:
    url = "redis://127.0.0.1:1/0"  # never contacted: arguments are checked first
    with pytest.raises(ValueError, match=r"--since .* must be before --until"):
        run_export(url, DEP, "1h", "2h", "jsonl", None)
    with pytest.raises(ValueError, match="--format: expected one of jsonl, csv, got 'xml'"):
        run_export(url, DEP, None, None, "xml", None)
    with pytest.raises(ValueError, match="expected an ISO 8601 time"):
        run_export(url, DEP, "last week", None, "csv", None)
    assert list(tmp_path.iterdir()) == []


def test_failed_export_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    with pytest.raises(redis_sync.ConnectionError):
        run_export("redis://127.0.0.1:1/0", DEP, None, None, "csv", str(path))
    assert list(tmp_path.iterdir()) == []
