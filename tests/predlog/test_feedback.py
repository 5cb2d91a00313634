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
from gateway.predlog.redisconn import Retention
from tests.redis_fixture import RedisServer

NOW = 1_800_000_000.0
CLASSES = ("benign", "malignant")
DEPLOYMENTS: dict[str, tuple[str, ...] | None] = {"bc": CLASSES, "fraud": ("no", "yes"),
                                                  "price": None}


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
    ({"request_id": "r1"}, "bc", ["label: expected a label or outcomes (at least one)",
                                  "got nothing (the field is missing)"]),
    ({"request_id": "r1", "label": None}, "bc", ["label: expected a label or outcomes",
                                                 "got null"]),
    ({"request_id": "r1", "label": [1]}, "bc", ["label: expected", "got array of 1"]),
    ({"request_id": "r1", "label": {"a": 1}}, "bc", ["label: expected", "got object of 1"]),
    ({"request_id": "r1", "label": True}, "bc", ["label: expected", "got boolean True"]),
    ({"request_id": "r1", "label": "foo"}, "bc",
     ["label: expected one of the classes of deployment 'bc' ('benign', 'malignant') or a "
      "class index 0 to 1", "got string 'foo'"]),
    ({"request_id": "r1", "label": 2}, "bc", ["label: expected one of the classes",
                                              "got integer 2"]),
    ({"request_id": "r1", "label": -1}, "bc", ["got integer -1"]),
    ({"request_id": "r1", "label": 0.5}, "bc", ["label: expected one of the classes",
                                                "got number 0.5"]),
    ({"request_id": "r1", "label": ""}, "bc", ["label: expected one of the classes",
                                               "got string ''"]),
    ({"request_id": "r1", "label": "benign", "deployment": "price"}, "bc",
     ["label: expected a finite number (deployment 'price' has no class labels)",
      "got string 'benign'"]),
    ({"request_id": "r1", "label": float("nan"), "deployment": "price"}, "bc",
     ["label: expected a finite number", "got number nan"]),
    ({"request_id": "r1", "label": 2**64 - 1, "deployment": "price"}, "bc",
     ["label: expected a number within the 64-bit"]),
    ({"label": 1}, "bc", ["request_id: expected request_id (the x-request-id the gateway "
                          "returned) or id (the request body's id), exactly one, got neither"]),
    ({"request_id": "r1", "id": "b1", "label": 1}, "bc", ["exactly one, got both"]),
    ({"request_id": "", "label": 1}, "bc", ["request_id: expected a string of 1 to 128",
                                           "got string ''"]),
    ({"request_id": "x" * 129, "label": 1}, "bc", ["request_id: expected a string of 1 to 128"]),
    ({"request_id": 7, "label": 1}, "bc", ["request_id: expected a string", "got integer 7"]),
    ({"id": "", "label": 1}, "bc", ["id: expected a string of 1 to 128", "got string ''"]),
    ({"request_id": "r1", "label": 1, "lable": 2}, "bc",
     ["'lable': unknown field, expected one of request_id, id, label, outcomes, correction, "
      "deployment, ts"]),
    ({"request_id": "r1", "label": 1, "deployment": "zzz"}, "bc",
     ["deployment: expected a configured deployment (bc, fraud, price)", "got string 'zzz'"]),
    ({"request_id": "r1", "label": 1}, None, ["deployment: expected a deployment name",
                                              "missing"]),
    ({"request_id": "r1", "label": 1, "ts": "yesterday"}, "bc",
     ["ts: expected Unix seconds", "got string 'yesterday'"]),
    ({"request_id": "r1", "label": 1, "ts": True}, "bc", ["ts: expected", "got boolean True"]),
    ({"request_id": "r1", "label": 1, "ts": float("nan")}, "bc", ["ts: expected", "got number"]),
    ({"request_id": "r1", "label": 1, "ts": -1.0}, "bc", ["ts: expected", "got number -1.0"]),
    ({"request_id": "r1", "label": 1, "ts": NOW * 1000}, "bc",
     ["ts: expected Unix seconds (a finite number, not in the future)"]),
    ({"request_id": "r1", "label": 1, "correction": "yes"}, "bc",
     ["correction: expected true or false", "got string 'yes'"]),
    ({"request_id": "r1", "outcomes": []}, "bc",
     ["outcomes: expected an object of at most 32 named numbers", "got array of 0"]),
    ({"request_id": "r1", "outcomes": {f"o{i}": 1 for i in range(33)}}, "bc",
     ["outcomes: expected an object of at most 32", "got object of 33"]),
    ({"request_id": "r1", "outcomes": {"revenue": "12.5"}}, "bc",
     ["outcomes.revenue: expected a finite number", "got string '12.5'"]),
    ({"request_id": "r1", "outcomes": {"converted": True}}, "bc",
     ["outcomes.converted: expected a finite number", "got boolean True"]),
    ({"request_id": "r1", "outcomes": {"1st": 1}}, "bc",
     ["outcomes: name '1st': expected a name matching ^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"]),
    ({"request_id": "r1", "outcomes": {"a" * 65: 1}}, "bc", ["expected a name matching"]),
    ({"items": {"request_id": "r1"}}, "bc", ["items: expected an array of at most 10000",
                                             "got object of 1"]),
    ({"items": [{"request_id": "r", "label": 1}] * (MAX_ITEMS + 1)}, "bc",
     ["items: expected an array of at most 10000 objects", "got array of 10001"]),
    ({"items": [{"request_id": f"r{i}", "label": 1} for i in range(3)]
      + [{"request_id": "r3", "label": "cat"}]}, "bc",
     ["items[3].label: expected one of the classes", "got string 'cat'"]),
    ({"items": [{"request_id": "r0", "label": 1}, "r1"]}, "bc",
     ["items[1]: expected an object", "got string 'r1'"]),
    ({"items": [{"request_id": "r0", "label": 1, "extra": 1}]}, "bc",
     ["items[0].'extra': unknown field"]),
    ({"items": [{"request_id": "r0", "label": 1, "deployment": "nope"}]}, "bc",
     ["items[0].deployment: expected a configured deployment"]),
    ({"items": [], "request_id": "r1"}, "bc",
     ["'request_id': unknown field, expected one of items, deployment"]),
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


def test_a_key_with_a_newline_is_quoted_in_the_message() -> None:
    with pytest.raises(BadRequest) as info:
        parse({"request_id": "r1", "label": 1, "x\nINFO forged": 1})
    assert "\n" not in info.value.message and "'x\\nINFO forged'" in info.value.message


def test_single_item_defaults() -> None:
    [item] = parse({"request_id": "r1", "label": "malignant"})
    assert item == FeedbackItem("bc", "r1", "malignant", NOW)


def test_class_index_is_stored_as_the_class_name() -> None:
    items = parse({"items": [{"request_id": "a", "label": 0}, {"request_id": "b", "label": 1.0},
                             {"id": "c", "label": "yes", "deployment": "fraud"}]})
    assert [(i.deployment, i.key, i.label) for i in items] == [
        ("bc", "a", "benign"), ("bc", "b", "malignant"), ("fraud", "c", "yes")]


def test_numbers_outcomes_corrections_and_ts_are_kept() -> None:
    items = parse({"deployment": "price", "items": [
        {"request_id": "a", "label": 12.5, "ts": 1_700_000_000},
        {"id": "b", "outcomes": {"converted": 1, "revenue": 0.1 + 0.2}, "correction": True},
        {"request_id": "c", "label": 1, "outcomes": {"x.y-z_1": -2}, "deployment": "bc",
         "ts": 1_700_000_000.12345},
    ]}, default=None)
    assert items == [
        FeedbackItem("price", "a", 12.5, 1_700_000_000.0),
        FeedbackItem("price", "b", None, NOW, {"converted": 1.0, "revenue": 0.3}, True),
        FeedbackItem("bc", "c", "malignant", 1_700_000_000.123, {"x.y-z_1": -2.0}),
    ]


def test_empty_bulk_and_full_bulk_are_accepted() -> None:
    assert parse({"items": []}) == []
    assert len(parse({"items": [{"request_id": f"r{i}", "label": i % 2}
                                for i in range(MAX_ITEMS)]})) == MAX_ITEMS


def test_stale_default_deployment_is_not_used() -> None:
    with pytest.raises(BadRequest, match="deployment: expected a deployment name"):
        parse_feedback({"request_id": "r1", "label": 1}, DEPLOYMENTS, "removed", now=NOW)


# -- storage --

async def logged(r: Redis, deployment: str, *ids: str, ts: float = NOW) -> None:
    """What the writer does for each record: its ids go into the index."""
    await r.zadd(keys.ids(deployment), {i: int(ts * 1000) for i in ids})


def item(key: str, label: Any = None, *, deployment: str = "bc", ts: float = NOW,
         outcomes: dict[str, float] | None = None, correction: bool = False) -> FeedbackItem:
    return FeedbackItem(deployment, key, label, ts, outcomes, correction)


def metric(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_store_bulk_and_single(r: Redis) -> None:
    metrics = Metrics(CollectorRegistry())
    await logged(r, "bc", *(f"r{i}" for i in range(1500)), "s1")
    await logged(r, "fraud", "f1")
    bulk = parse({"items": [{"request_id": f"r{i}", "label": i % 2} for i in range(1500)]
                  + [{"request_id": "f1", "label": "yes", "deployment": "fraud"}]})
    result = await store_feedback(r, bulk, NOW + 5, by="labeler", metrics=metrics)
    assert result.as_json() == {"stored": 1501, "ignored": 0, "corrected": 0, "orphans": 0}
    result = await store_feedback(r, parse({"request_id": "s1", "label": "benign"}), NOW)
    assert (result.stored, result.orphans) == (1, 0)
    assert await r.hlen(keys.feedback("bc")) == 1501
    raw = await r.hget(keys.feedback("bc"), "r7")
    assert raw is not None
    assert orjson.loads(raw) == {"label": "malignant", "ts": NOW, "received": NOW + 5,
                                 "by": "labeler", "corrections": 0}
    assert await get_labels(r, "fraud", ["f1", "r1"]) == {"f1": "yes"}
    assert metric(metrics, "shadowgate_feedback_received_total", deployment="bc",
                  by="labeler") == 1500
    assert metric(metrics, "shadowgate_feedback_received_total", deployment="fraud",
                  by="labeler") == 1


async def test_store_nothing(r: Redis) -> None:
    assert (await store_feedback(r, [], NOW)).as_json() == {
        "stored": 0, "ignored": 0, "corrected": 0, "orphans": 0}


async def test_a_later_label_is_ignored_unless_it_is_a_correction(r: Redis) -> None:
    """The attack: overwrite a record's truth with the opposite label."""
    metrics = Metrics(CollectorRegistry())
    await logged(r, "bc", "r1")
    await store_feedback(r, [item("r1", "benign")], NOW, by="app")
    result = await store_feedback(r, [item("r1", "malignant", ts=NOW + 60)], NOW + 90,
                                  by="attacker", metrics=metrics)
    assert (result.stored, result.ignored, result.corrected) == (0, 1, 0)
    assert await get_feedback(r, "bc", ["r1"]) == {
        "r1": {"label": "benign", "outcomes": {}, "ts": NOW, "received": NOW}}
    assert metric(metrics, "shadowgate_feedback_ignored_total", deployment="bc",
                  reason="duplicate") == 1
    result = await store_feedback(r, [item("r1", "malignant", ts=NOW + 60, correction=True)],
                                  NOW + 120, by="app", metrics=metrics)
    assert (result.stored, result.ignored, result.corrected) == (0, 0, 1)
    assert await get_feedback(r, "bc", ["r1"]) == {
        "r1": {"label": "malignant", "outcomes": {}, "ts": NOW + 60, "received": NOW + 120}}
    stored = orjson.loads(await r.hget(keys.feedback("bc"), "r1"))
    assert (stored["by"], stored["corrections"]) == ("app", 1)
    assert metric(metrics, "shadowgate_feedback_corrections_total", deployment="bc") == 1


async def test_within_one_bulk_the_first_label_wins(r: Redis) -> None:
    await logged(r, "bc", "r1")
    result = await store_feedback(r, [item("r1", "benign"), item("r1", "malignant")], NOW)
    assert (result.stored, result.ignored) == (1, 1)
    assert await get_labels(r, "bc", ["r1"]) == {"r1": "benign"}


async def test_outcomes_merge_name_by_name_under_the_same_rule(r: Redis) -> None:
    await logged(r, "bc", "r1")
    await store_feedback(r, [item("r1", outcomes={"converted": 1})], NOW)
    result = await store_feedback(r, [item("r1", "benign", outcomes={"converted": 0,
                                                                      "revenue": 12.5})], NOW)
    assert (result.stored, result.ignored, result.corrected) == (1, 0, 0)  # partly new
    assert (await get_feedback(r, "bc", ["r1"]))["r1"]["outcomes"] == {
        "converted": 1, "revenue": 12.5}
    result = await store_feedback(r, [item("r1", outcomes={"converted": 1})], NOW)
    assert result.ignored == 1
    await store_feedback(r, [item("r1", outcomes={"revenue": 7}, correction=True)], NOW)
    got = (await get_feedback(r, "bc", ["r1"]))["r1"]
    assert got["outcomes"] == {"converted": 1, "revenue": 7} and got["label"] == "benign"


async def test_orphans_are_kept_within_the_window_and_refused_after_it(r: Redis) -> None:
    metrics = Metrics(CollectorRegistry())
    await logged(r, "bc", "old-but-logged", ts=NOW - 86_400)
    items = [item("on-its-way", "benign", ts=NOW - 30),
             item("never-logged", "benign", ts=NOW - 3600),
             item("old-but-logged", "benign", ts=NOW - 86_400),
             item("no-ts-given", "benign")]
    result = await store_feedback(r, items, NOW, orphan_window_s=600, metrics=metrics)
    assert (result.stored, result.orphans) == (3, 2)
    [(index, why)] = result.refused
    assert index == 1
    assert "no record for 'never-logged'" in why and "600 s" in why and "orphan window" in why
    assert set(await get_labels(r, "bc", [i.key for i in items])) == {
        "on-its-way", "old-but-logged", "no-ts-given"}
    assert metric(metrics, "shadowgate_feedback_orphans_total", deployment="bc") == 2
    assert metric(metrics, "shadowgate_feedback_ignored_total", deployment="bc",
                  reason="orphan_too_old") == 1


async def test_storage_is_bounded_by_max_len_oldest_first(r: Redis) -> None:
    metrics = Metrics(CollectorRegistry())
    policy = Retention(max_len=1000)
    for post in range(5):
        batch = [item(f"p{post}-{i}", "benign") for i in range(700)]
        await store_feedback(r, batch, NOW + post, retention=lambda _: policy, metrics=metrics)
    assert await r.hlen(keys.feedback("bc")) == 1000
    assert await r.zcard(keys.feedback_received("bc")) == 1000
    kept = await get_labels(r, "bc", [f"p{p}-{i}" for p in range(5) for i in range(700)])
    assert set(kept) >= {f"p4-{i}" for i in range(700)}  # the newest post is whole
    assert not any(k.startswith(("p0-", "p1-", "p2-")) for k in kept)
    assert metric(metrics, "shadowgate_feedback_trimmed_total", deployment="bc") == 2500


async def test_storage_is_bounded_by_max_age(r: Redis) -> None:
    policy = Retention(max_len=None, max_age_s=3600)
    await store_feedback(r, [item("old", "benign")], NOW - 7200, retention=lambda _: policy)
    await store_feedback(r, [item("new", "benign")], NOW, retention=lambda _: policy)
    assert await get_labels(r, "bc", ["old", "new"]) == {"new": "benign"}
    assert await r.zcard(keys.feedback_received("bc")) == 1


async def test_numbers_round_trip_through_redis(r: Redis) -> None:
    items = parse({"deployment": "price", "items": [
        {"request_id": "a", "label": 0.1 + 0.2, "ts": 1_700_000_000.1239},
        {"request_id": "b", "label": 1 / 3, "outcomes": {"revenue": 12.345678901234567}},
        {"request_id": "c", "label": 4, "outcomes": {"n": 2**53 + 1}}]})
    await logged(r, "price", "a")  # its ts is older than the orphan window
    assert not (await store_feedback(r, items, NOW)).refused
    got = await get_feedback(r, "price", ["a", "b", "c"])
    assert got["a"]["label"] == 0.3 and got["a"]["ts"] == 1_700_000_000.124
    assert got["b"]["label"] == items[1].label == float(f"{1 / 3:.14g}")
    assert got["b"]["outcomes"] == {"revenue": 12.345678901235}
    assert got["c"]["label"] == 4 and got["c"]["outcomes"]["n"] == float(f"{2**53 + 1:.14g}")


async def test_get_feedback_in_chunks_skips_missing_and_garbage(r: Redis) -> None:
    items = [item(f"r{i}", CLASSES[i % 2]) for i in range(0, 2500, 2)]
    await store_feedback(r, items, NOW)
    await r.hset(keys.feedback("bc"), mapping={
        "g1": b"not json", "g2": b"[1]", "g3": b"{}",
        "old": orjson.dumps({"label": 1, "ts": NOW, "received": NOW})})  # before outcomes
    ids = [f"r{i}" for i in range(2500)] + ["g1", "g2", "g3", "r0", "old"]
    labels = await get_labels(r, "bc", ids)
    assert labels == {**{f"r{i}": "benign" for i in range(0, 2500, 2)}, "old": 1}
    assert (await get_feedback(r, "bc", ["old"]))["old"]["outcomes"] == {}


async def test_outcomes_only_reads_back_without_a_label(r: Redis) -> None:
    await store_feedback(r, [item("r1", outcomes={"converted": 1})], NOW)
    assert await get_feedback(r, "bc", ["r1"]) == {
        "r1": {"label": None, "outcomes": {"converted": 1}, "ts": NOW, "received": NOW}}
    assert await get_labels(r, "bc", ["r1"]) == {}


async def test_garbage_in_the_hash_is_replaced_not_fatal(r: Redis) -> None:
    await r.hset(keys.feedback("bc"), "r1", b"not json")
    result = await store_feedback(r, [item("r1", "benign")], NOW)
    assert result.stored == 1
    assert await get_labels(r, "bc", ["r1"]) == {"r1": "benign"}
