from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from gateway.errors import BadRequest
from gateway.metrics import Metrics
from gateway.predlog import keys
from gateway.predlog.feedback import (
    MAX_ITEMS,
    FeedbackItem,
    get_feedback,
    get_labels,
    parse_feedback,
    store_feedback,
)
from tests.redis_fixture import RedisServer

NOW = 1_800_000_000.0
DEPLOYMENTS = ("bc", "fraud")


@pytest.fixture
async def r(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


def parse(payload: Any, default: str | None = "bc") -> list[FeedbackItem]:
    return parse_feedback(payload, DEPLOYMENTS, default, now=NOW)


# -- validation --

BAD_CASES: list[tuple[Any, str | None, list[str]]] = [
    ([], "bc", ["body: expected an object", "got array"]),
    ("x", "bc", ["body: expected an object", "got string 'x'"]),
    ({"request_id": "r1"}, "bc", ["label: expected a string, number or boolean",
                                  "got nothing (the field is missing)"]),
    ({"request_id": "r1", "label": None}, "bc", ["label: expected", "got null"]),
    ({"request_id": "r1", "label": [1]}, "bc", ["label: expected", "got array of 1"]),
    ({"request_id": "r1", "label": {"a": 1}}, "bc", ["label: expected", "got object of 1"]),
    ({"request_id": "r1", "label": float("nan")}, "bc",
     ["label: expected a finite number", "got number nan"]),
    ({"request_id": "r1", "label": float("inf")}, "bc", ["label: expected a finite number"]),
    ({"request_id": "r1", "label": 2**70}, "bc", ["label: expected an integer within the 64-bit"]),
    ({"request_id": "r1", "label": ""}, "bc",
     ["label: expected a string of 1 to 256", "got string"]),
    ({"request_id": "r1", "label": "x" * 257}, "bc", ["label: expected a string of 1 to 256"]),
    ({"label": 1}, "bc", ["request_id: expected a string of 1 to 128", "missing"]),
    ({"request_id": "", "label": 1}, "bc", ["request_id: expected a string of 1 to 128",
                                           "got string ''"]),
    ({"request_id": "x" * 129, "label": 1}, "bc", ["request_id: expected a string of 1 to 128"]),
    ({"request_id": 7, "label": 1}, "bc", ["request_id: expected a string", "got integer 7"]),
    ({"request_id": "r1", "label": 1, "lable": 2}, "bc",
     ["lable: unknown field, expected one of request_id, label, deployment, ts"]),
    ({"request_id": "r1", "label": 1, "deployment": "zzz"}, "bc",
     ["deployment: expected a configured deployment (bc, fraud)", "got string 'zzz'"]),
    ({"request_id": "r1", "label": 1}, None, ["deployment: expected a deployment name",
                                              "missing"]),
    ({"request_id": "r1", "label": 1, "ts": "yesterday"}, "bc",
     ["ts: expected Unix seconds", "got string 'yesterday'"]),
    ({"request_id": "r1", "label": 1, "ts": True}, "bc", ["ts: expected", "got boolean True"]),
    ({"request_id": "r1", "label": 1, "ts": float("nan")}, "bc", ["ts: expected", "got number"]),
    ({"request_id": "r1", "label": 1, "ts": -1.0}, "bc", ["ts: expected", "got number -1.0"]),
    ({"request_id": "r1", "label": 1, "ts": NOW * 1000}, "bc",
     ["ts: expected Unix seconds (a finite number, not in the future)"]),
    ({"items": {"request_id": "r1"}}, "bc", ["items: expected an array of at most 10000",
                                             "got object of 1"]),
    ({"items": [{"request_id": "r", "label": 1}] * (MAX_ITEMS + 1)}, "bc",
     ["items: expected an array of at most 10000 objects", "got array of 10001"]),
    ({"items": [{"request_id": f"r{i}", "label": 1} for i in range(3)]
      + [{"request_id": "r3", "label": None}]}, "bc", ["items[3].label: expected", "got null"]),
    ({"items": [{"request_id": "r0", "label": 1}, "r1"]}, "bc",
     ["items[1]: expected an object", "got string 'r1'"]),
    ({"items": [{"request_id": "r0", "label": 1, "extra": 1}]}, "bc",
     ["items[0].extra: unknown field"]),
    ({"items": [{"request_id": "r0", "label": 1, "deployment": "nope"}]}, "bc",
     ["items[0].deployment: expected a configured deployment"]),
    ({"items": [], "request_id": "r1"}, "bc",
     ["request_id: unknown field, expected one of items, deployment"]),
    ({"items": [], "deployment": 3}, "bc", ["deployment: expected a configured deployment",
                                           "got integer 3"]),
    ({"items": [{"request_id": "r0", "label": 1}]}, None,
     ["items[0].deployment: expected a deployment name (there is no default)"]),
]


@pytest.mark.parametrize(("payload", "default", "fragments"), BAD_CASES)
def test_bad_feedback_names_field_expected_and_got(
    payload: Any, default: str | None, fragments: list[str]
) -> None:
    with pytest.raises(BadRequest) as info:
        parse(payload, default)
    assert info.value.status_code == 400
    for fragment in fragments:
        assert fragment in info.value.message


def test_single_item_defaults() -> None:
    [item] = parse({"request_id": "r1", "label": "malignant"})
    assert item == FeedbackItem("bc", "r1", "malignant", NOW)


def test_label_types_and_ts_are_kept() -> None:
    items = parse({"deployment": "fraud", "items": [
        {"request_id": "a", "label": True, "ts": 1_700_000_000},
        {"request_id": "b", "label": 3},
        {"request_id": "c", "label": 0.25, "deployment": "bc"},
    ]}, default=None)
    assert items == [FeedbackItem("fraud", "a", True, 1_700_000_000.0),
                     FeedbackItem("fraud", "b", 3, NOW),
                     FeedbackItem("bc", "c", 0.25, NOW)]
    assert type(items[0].label) is bool and type(items[1].label) is int


def test_empty_bulk_and_full_bulk_are_accepted() -> None:
    assert parse({"items": []}) == []
    assert len(parse({"items": [{"request_id": f"r{i}", "label": i}
                                for i in range(MAX_ITEMS)]})) == MAX_ITEMS


def test_stale_default_deployment_is_not_used() -> None:
    with pytest.raises(BadRequest, match="deployment: expected a deployment name"):
        parse_feedback({"request_id": "r1", "label": 1}, DEPLOYMENTS, "removed", now=NOW)


# -- storage --

async def test_store_bulk_and_single(r: Redis) -> None:
    metrics = Metrics(CollectorRegistry())
    bulk = parse({"items": [{"request_id": f"r{i}", "label": i % 2} for i in range(1500)]
                  + [{"request_id": "f1", "label": "fraud", "deployment": "fraud"}]})
    assert await store_feedback(r, bulk, NOW + 5, metrics=metrics) == 1501
    assert await store_feedback(r, parse({"request_id": "s1", "label": "yes"}), NOW) == 1
    assert await r.hlen(keys.feedback("bc")) == 1501
    raw = await r.hget(keys.feedback("bc"), "r7")
    assert raw is not None
    assert orjson.loads(raw) == {"label": 1, "ts": NOW, "received": NOW + 5}
    assert await get_labels(r, "fraud", ["f1", "r1"]) == {"f1": "fraud"}
    assert metrics.registry.get_sample_value(
        "shadowgate_feedback_received_total", {"deployment": "bc"}) == 1500
    assert metrics.registry.get_sample_value(
        "shadowgate_feedback_received_total", {"deployment": "fraud"}) == 1


async def test_store_nothing(r: Redis) -> None:
    assert await store_feedback(r, [], NOW) == 0


async def test_later_label_overwrites_earlier(r: Redis) -> None:
    await store_feedback(r, parse({"request_id": "r1", "label": "benign"}), NOW)
    await store_feedback(r, parse({"request_id": "r1", "label": "malignant", "ts": NOW + 60}),
                         NOW + 90)
    assert await get_feedback(r, "bc", ["r1"]) == {
        "r1": {"label": "malignant", "ts": NOW + 60, "received": NOW + 90}}


async def test_duplicate_in_one_bulk_last_wins(r: Redis) -> None:
    items = parse({"items": [{"request_id": "r1", "label": 1}, {"request_id": "r1", "label": 2}]})
    assert await store_feedback(r, items, NOW) == 1
    assert await get_labels(r, "bc", ["r1"]) == {"r1": 2}


async def test_get_labels_in_chunks_skips_missing_and_garbage(r: Redis) -> None:
    items = [FeedbackItem("bc", f"r{i}", i, NOW) for i in range(0, 2500, 2)]
    await store_feedback(r, items, NOW)
    await r.hset(keys.feedback("bc"), mapping={"g1": b"not json", "g2": b"[1]", "g3": b"{}"})
    ids = [f"r{i}" for i in range(2500)] + ["g1", "g2", "g3", "r0"]
    labels = await get_labels(r, "bc", ids)
    assert labels == {f"r{i}": i for i in range(0, 2500, 2)}
