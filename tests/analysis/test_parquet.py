"""ParquetSource: the archive gives the report the same Batches and numbers as the stream."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest
from redis.asyncio import Redis

from gateway.analysis.batch import Batch
from gateway.analysis.decode import Feedback, Layout, decode_page, to_batch
from gateway.analysis.parquet import (
    ParquetSource,
    champion_features,
    day_files,
    parquet_source,
    whole_records,
)
from gateway.analysis.report import build_report
from gateway.analysis.sources import RedisSource, as_feedback
from gateway.config.load import LoadedConfig, load
from gateway.predlog import keys
from gateway.predlog.parquet import DayWriter, export_parquet
from gateway.predlog.record import STREAM_FIELD
from tests import helpers
from tests.analysis.synthetic import Candidate, World, generate
from tests.helpers import ROOT
from tests.redis_fixture import RedisServer

DEP = "breast-cancer"
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z: stream ids (now) are later, as in production
CLASSES = ("malignant", "benign")
FEATURES = ("radius", "texture", "area")
LAYOUT = Layout(CLASSES, len(FEATURES), ("converted", "revenue"))


def entry(model: str, *, role: str = "shadow", status: str = "ok", rows: int = 1,
          labels: Sequence[Any] | None = None, scores: list[list[float | None]] | None = None,
          classes: Sequence[str] | None = CLASSES, latency: float | None = 1.25,
          tensors: dict[str, Any] | None = None, version: str = "1") -> dict[str, Any]:
    output: dict[str, Any] | None = None
    if status == "ok":
        if tensors is not None:
            output = {"tensors": tensors}
        else:
            output = {"label": list(labels or ["benign"] * rows),
                      "scores": scores or [[0.25, 0.75]] * rows}
            if classes is not None:
                output["classes"] = list(classes)
    return {"role": role, "model": model, "version": version, "served": role != "shadow",
            "status": status, "latency_ms": latency, "error": None, "output": output}


def record(i: int, *, rows: int = 1, variant: str = "champion", id_: str | None = None,
           predictions: list[dict[str, Any]] | None = None, inputs: Any = "default",
           key_hash: str | None = None) -> dict[str, Any]:
    if inputs == "default":
        data = [[i + 0.5, 2.0 * i, -1.25] for _ in range(max(rows, 1))]
        inputs = {"input": {"datatype": "FP32", "shape": [max(rows, 1), 3], "data": data}}
    champ = entry("champ", role="champion" if variant == "champion" else "shadow",
                  rows=max(rows, 1))
    return {"v": 1, "request_id": f"r{i}", "id": id_, "ts": T0 + i * 7.5, "deployment": DEP,
            "revision": "rev", "key_hash": key_hash, "bucket": i * 37 % 10_000,
            "variant": variant, "rows": rows,
            "predictions": predictions if predictions is not None else [
                champ, entry("cand", rows=max(rows, 1))],
            "inputs": inputs}


def stored(label: Any, *, outcomes: dict[str, float] | None = None, ts: float = T0 + 60,
           received: float = T0 + 90) -> dict[str, Any]:
    value: dict[str, Any] = {"label": label, "ts": ts, "received": received}
    if outcomes is not None:
        value["outcomes"] = outcomes
    return value


def odd_records() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Records covering every branch of the two readers, and the feedback keyed as stored."""
    records = [
        record(0, key_hash="ab12"),
        record(1, variant="canary", id_="body-1", predictions=[
            entry("cand", role="canary"), entry("champ", role="shadow")]),
        record(2, rows=3, predictions=[
            entry("champ", role="champion", rows=3, labels=["benign", "malignant", "benign"],
                  scores=[[0.1, 0.9], [0.8, 0.2], [None, 0.6]]),
            entry("cand", rows=3)]),
        record(3, rows=2),  # one label for two rows: no truth row
        record(4),  # outcomes only
        record(5), record(6), record(7), record(8),  # numeric and boolean labels
        record(9, predictions=[  # failures, a status nobody knows, a model without classes
            entry("champ", role="champion"), entry("cand", status="error", latency=3.5),
            entry("late", status="dropped", latency=None), entry("odd", status="weird"),
            entry("reg", tensors={"y": {"datatype": "FP32", "shape": [1, 1], "data": [[4.5]]}})]),
        record(10, predictions=[  # scores in another class order, and without class names
            entry("champ", role="champion"),
            entry("rev", classes=["benign", "malignant"], scores=[[0.7, 0.3]],
                  labels=["benign"]),
            entry("idx", classes=None, scores=[[0.4, 0.6]])]),
        record(11, inputs={"a": {"datatype": "FP32", "shape": [1, 3], "data": [[1, 2, 3]]},
                           "b": {"datatype": "FP32", "shape": [1, 1], "data": [[4]]}}),
        record(12, inputs={"input": {"datatype": "FP64", "shape": [1, 2], "data": [[1, 2]]}}),
        record(13, inputs=None, predictions=[entry("champ", role="champion",
                                                   labels=["neither"])]),
        record(14, rows=0),  # treated as one row, as the stream reader does
    ]
    feedback = {
        "r0": stored("malignant", outcomes={"converted": 1, "revenue": 12.5}),
        "body-1": stored("benign", outcomes={"converted": 0}),  # posted under the V2 body id
        "r2": stored(["malignant", "malignant", "benign"]),
        "r3": stored("benign"),
        "r4": stored(None, outcomes={"revenue": 3.0}, received=0.0),
        "r5": stored(1), "r6": stored(1.0), "r7": stored("1"), "r8": stored(True),
        "r13": stored("unknown-class"),
    }
    return records, feedback


def joined(records: list[dict[str, Any]], feedback: dict[str, dict[str, Any]]
           ) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    return [(r, feedback.get(r["request_id"]) or (feedback.get(r["id"]) if r["id"] else None))
            for r in records]


def archive(tmp_path: Path, records: list[dict[str, Any]], feedback: dict[str, dict[str, Any]],
            features: Sequence[str] = FEATURES, **writer: Any) -> Path:
    out = DayWriter(tmp_path, DEP, features=features, **writer)
    out.add(joined(records, feedback))
    out.commit()
    return tmp_path


async def read(source: ParquetSource, layout: Layout = LAYOUT) -> list[Batch]:
    return [batch async for batch in source.batches(layout)]


def assert_same_batch(got: Batch, want: Batch) -> None:
    assert got.keys == want.keys
    for f in fields(Batch):
        if f.name in ("outcomes", "models", "keys"):
            continue
        a, b = getattr(got, f.name), getattr(want, f.name)
        assert a.dtype == b.dtype, f.name
        np.testing.assert_array_equal(a, b, err_msg=f.name)
    assert got.outcomes.keys() == want.outcomes.keys()
    for name in want.outcomes:
        np.testing.assert_array_equal(got.outcomes[name], want.outcomes[name], err_msg=name)
    assert got.models.keys() == want.models.keys()
    for key, model in want.models.items():
        for f in fields(model):
            a, b = getattr(got.models[key], f.name), getattr(model, f.name)
            assert a.dtype == b.dtype, (key, f.name)
            np.testing.assert_array_equal(a, b, err_msg=f"{key} {f.name}")


async def test_batches_equal_the_stream_readers_on_every_kind_of_record(tmp_path: Path) -> None:
    records, feedback = odd_records()
    want = to_batch(decode_page([orjson.dumps(r) for r in records])[0],
                    {k: as_feedback(v) for k, v in feedback.items()}, LAYOUT)
    batches = await read(ParquetSource(archive(tmp_path, records, feedback), DEP, since=None,
                                       until=None, features=FEATURES))
    assert len(batches) == 1
    assert_same_batch(batches[0], want)
    assert batches[0].truth[want.rec == 5].tolist() == [1]  # an integer label is a class index
    assert set(want.models) == {"champ:1", "cand:1", "late:1", "odd:1", "reg:1", "rev:1",
                                "idx:1"}


async def test_a_regressor_deployment_reads_numeric_labels_and_values(tmp_path: Path) -> None:
    records, feedback = odd_records()
    layout = Layout((), 0, ())
    want = to_batch(decode_page([orjson.dumps(r) for r in records])[0],
                    {k: as_feedback(v) for k, v in feedback.items()}, layout)
    got = await read(ParquetSource(archive(tmp_path, records, feedback), DEP, since=None,
                                   until=None), layout)
    assert_same_batch(got[0], want)
    assert np.nanmax(got[0].truth_value) == 1.0 and np.nanmax(got[0].models["reg:1"].value) == 4.5


async def test_requests_of_several_rows_are_never_split_between_batches(tmp_path: Path) -> None:
    records = [record(i, rows=1 + i % 4) for i in range(30)]
    feedback = {f"r{i}": stored(["benign"] * (1 + i % 4)) for i in range(0, 30, 3)}
    directory = archive(tmp_path, records, feedback, row_group=7)
    batches = await read(ParquetSource(directory, DEP, since=None, until=None,
                                       features=FEATURES, batch_rows=5))
    assert len(batches) > 5
    for batch in batches:
        counts = np.bincount(batch.rec, minlength=batch.records)
        assert counts.tolist() == [1 + round((t - T0) / 7.5) % 4 for t in batch.ts]
    assert sum(b.records for b in batches) == 30
    whole = to_batch(decode_page([orjson.dumps(r) for r in records])[0],
                     {k: as_feedback(v) for k, v in feedback.items()}, LAYOUT)
    np.testing.assert_array_equal(np.concatenate([b.truth for b in batches]), whole.truth)
    np.testing.assert_array_equal(np.concatenate([b.inputs for b in batches]), whole.inputs)
    assert np.isfinite(whole.inputs).all()


def test_whole_records_keeps_a_request_that_ends_the_scan() -> None:
    import pyarrow as pa

    batch = pa.record_batch({"row": [0, 0, 1], "rows": [1, 3, 3]})
    tail = pa.record_batch({"row": [2, 0], "rows": [3, 1]})
    got = list(whole_records(iter([batch.slice(0, 2), batch.slice(2), tail])))
    assert [b.column("row").to_pylist() for b in got] == [[0], [0, 1, 2, 0]]
    cut = list(whole_records(iter([batch])))  # a scan that ends inside a request keeps it
    assert [b.column("row").to_pylist() for b in cut] == [[0], [0, 1]]


async def test_a_model_added_later_is_read_across_files_by_name(tmp_path: Path) -> None:
    first = [record(i) for i in range(5)]  # day 1: champion and one candidate
    later = [record(20_000 + i, predictions=[entry("champ", role="champion"), entry("cand"),
                                             entry("new", version="2")]) for i in range(5)]
    archive(tmp_path, first + later, {})
    files = day_files(tmp_path, DEP, None, None)
    assert len(files) == 2
    assert "m.new:2.status" not in pq.read_schema(files[0]).names
    batches = await read(ParquetSource(tmp_path, DEP, since=None, until=None, features=FEATURES))
    models = [set(b.models) for b in batches]
    assert {"new:2"} <= set().union(*models)
    assert all("new:2" not in m for b, m in zip(batches, models, strict=True)
               if b.ts.max() < T0 + 86_400)  # no model that was not there yet


async def test_the_window_filters_on_ts_and_skips_other_days(tmp_path: Path) -> None:
    records = [record(i) for i in range(0, 40_000, 1000)]  # 3.5 days, 7.5 s apart per step
    archive(tmp_path, records, {})
    since, until = T0 + 1000 * 7.5 * 12, T0 + 1000 * 7.5 * 20
    source = ParquetSource(tmp_path, DEP, since=since, until=until, features=FEATURES)
    assert len(source.files()) == 2  # the days of since and until only
    ts = np.concatenate([b.ts for b in await read(source)])
    assert ts.tolist() == [T0 + i * 7.5 for i in range(12_000, 20_000, 1000)]
    assert source.stats.records == 8
    empty = ParquetSource(tmp_path, "other", since=None, until=None)
    assert await read(empty) == [] and empty.stats.records == 0


@pytest.fixture(scope="module")
def example() -> LoadedConfig:
    return load(ROOT / "config" / "example.yaml")


def numbers(value: Any) -> Iterator[tuple[str, Any]]:
    """Every leaf of a dumped report, with its path."""
    if isinstance(value, dict):
        for key, item in value.items():
            for path, leaf in numbers(item):
                yield f"{key}.{path}", leaf
    elif isinstance(value, list):
        for i, item in enumerate(value):
            for path, leaf in numbers(item):
                yield f"{i}.{path}", leaf
    else:
        yield "", value


def assert_same_report(got: Any, want: Any) -> None:
    a, b = got.model_dump(), want.model_dump()
    a["window"]["source"] = b["window"]["source"]
    left, right = list(numbers(a)), list(numbers(b))
    assert [p for p, _ in left] == [p for p, _ in right]
    for (path, x), (_, y) in zip(left, right, strict=True):
        if isinstance(x, float) and isinstance(y, float):  # sums over other batch boundaries
            assert (math.isnan(x) and math.isnan(y)) or math.isclose(
                x, y, rel_tol=1e-9, abs_tol=1e-12), path
        else:
            assert x == y, path


@pytest.fixture
async def r(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


CANARY_CONFIG = helpers.config([{
    "name": DEP, "champion": "bc-logreg", "canaries": [{"model": "bc-gbt", "weight": 20}],
    "shadows": [{"model": "bc-rf"}], "outcomes": [{"name": "converted", "missing": 0}],
    "decision": {"positive_class": "malignant", "values": {"true_positive": 40,
                                                          "false_positive": -15}}}])


@pytest.mark.parametrize("canary", [False, True], ids=["shadows", "canary"])
async def test_reports_from_redis_and_from_its_parquet_export_are_equal(
        r: Redis, tmp_path: Path, example: LoadedConfig, canary: bool) -> None:
    loaded = helpers.loaded(CANARY_CONFIG) if canary else example
    world = World(records=1500, labelled=0.3, start=T0, rate=0.01, seed=3, candidates=[
        Candidate("bc-gbt", fix=0.4, canary=20.0 if canary else 0.0, lift=0.2),
        Candidate("bc-rf", flip=0.1, fail=0.02)])
    payloads, feedback = generate(world)
    pipe = r.pipeline(transaction=False)
    for payload in payloads:
        pipe.xadd(keys.pairs(DEP), {STREAM_FIELD: payload})
    pipe.hset(keys.feedback(DEP), mapping={k: orjson.dumps(
        {"label": f.label, "outcomes": dict(f.outcomes), "ts": f.received - 30,
         "received": f.received}) for k, f in feedback.items()})
    await pipe.execute()
    features = champion_features(loaded, DEP)
    result = await export_parquet(r, DEP, tmp_path, since=None, until=None, features=features)
    assert result.records == 1500 and len(result.written) == 3  # 1500 x 100 s: 3 UTC days
    for since, until in ((None, None), (T0 + 20_000, T0 + 120_000)):
        redis_source = RedisSource(r, DEP, since=since, until=until)
        want = await build_report(loaded, DEP, redis_source, since=since, until=until, now=T0)
        source = parquet_source(loaded, tmp_path, DEP, since=since, until=until)
        assert source.keys == canary  # routing keys as text only where a split needs them
        got = await build_report(loaded, DEP, source, since=since, until=until, now=T0)
        assert got.traffic.records == redis_source.stats.records > 0
        assert got.traffic.labelled > 0 and got.drift
        if canary:
            ab = got.candidates[0].ab if got.candidates[0].model == "bc-gbt:1" else None
            assert ab is not None and ab.outcomes
        assert_same_report(got, want)


def test_parquet_source_names_what_is_missing(tmp_path: Path, example: LoadedConfig) -> None:
    with pytest.raises(ValueError, match="no Parquet archive of 'breast-cancer'"):
        parquet_source(example, tmp_path, DEP, since=None, until=None)
    with pytest.raises(KeyError, match="nope"):
        parquet_source(example, tmp_path, "nope", since=None, until=None)


def test_feedback_for_the_decoder_matches_what_the_archive_keeps() -> None:
    # The archive stores the raw feedback times; the reader applies the stream's fallbacks.
    assert as_feedback(stored(None, received=0.0)) == Feedback(None, {}, T0 + 60)
