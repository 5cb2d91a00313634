"""loadtests/report_bench.py at a small size, so that the benchmark cannot rot: its Redis and
Parquet records are the gateway's and the exporter's, and give the same report."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from redis.asyncio import Redis

from gateway.analysis.parquet import champion_features
from gateway.analysis.report import build_report
from gateway.analysis.slices import SliceSource
from gateway.config.load import load
from gateway.predlog.parquet import export_parquet
from tests.analysis.test_parquet import assert_same_report
from tests.redis_fixture import RedisServer

LOADTESTS = Path(__file__).resolve().parent.parent / "loadtests"
sys.path.insert(0, str(LOADTESTS))

import report_bench  # noqa: E402


async def test_both_sources_hold_the_same_records_in_the_exporters_layout(
        redis_server: RedisServer, tmp_path: Path) -> None:
    records, labels = report_bench.load_redis(redis_server.port, 600, 2.0, seed=1)
    assert records == 600 and 30 < labels < 100
    report_bench.write_parquet(tmp_path / "bench", 600, 2.0, seed=1)
    loaded = load(report_bench.CONFIG)
    from_redis = await report_bench.build("redis", redis_server.url, loaded)
    from_parquet = await report_bench.build("parquet", str(tmp_path / "bench"), loaded)
    assert from_redis.traffic.records == 600 and from_redis.traffic.labelled == labels
    assert {c.model for c in from_redis.candidates} == {"bc-gbt:1", "bc-rf:1"}
    assert_same_report(from_parquet, from_redis)
    # The stream read by worker processes in slices, batches not aligned with pages, and read
    # in one process: the same report.
    for workers in (2, 1):
        sliced = SliceSource(redis_server.url, report_bench.DEPLOYMENT, since=None, until=None,
                             workers=workers, parallel_from=1, batch=150)
        got = await build_report(loaded, report_bench.DEPLOYMENT, sliced,
                                 now=report_bench.START)
        assert sliced.stats.entries == 600 and sliced.stats.records == 600, workers
        assert_same_report(got, from_redis)
    # What the exporter writes for the records in Redis has the bench's columns and types.
    redis = Redis.from_url(redis_server.url)
    try:
        await export_parquet(redis, report_bench.DEPLOYMENT, tmp_path / "export", since=None,
                             until=None, features=champion_features(loaded, "breast-cancer"))
    finally:
        await redis.aclose()
    bench = sorted((tmp_path / "bench").rglob("*.parquet"))
    exported = sorted((tmp_path / "export").rglob("*.parquet"))
    assert [p.relative_to(tmp_path / "bench") for p in bench] == [
        p.relative_to(tmp_path / "export") for p in exported]
    assert pq.read_schema(bench[0]) == pq.read_schema(exported[0])


@pytest.mark.slow
def test_the_benchmark_runs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    assert report_bench.main(["--redis-records", "1000", "--parquet-records", "1000",
                              "--days", "1"]) == 0
    out = capsys.readouterr().out
    assert "redis          1,000 records" in out and "parquet        1,000 records" in out
