from __future__ import annotations

import random
import subprocess
import sys

import orjson

from gateway.traffic.hashing import BUCKETS, bucket
from gateway.traffic.router import DeploymentPlan, ShadowPlan, route


def plan(weight: float, shadows: tuple[ShadowPlan, ...] = ()) -> DeploymentPlan:
    return DeploymentPlan.build("dep", "salt", "champ:1", [("cand:1", weight)], shadows)


def test_bucket_is_stable_across_processes() -> None:
    keys = [f"user-{i}" for i in range(50)]
    here = [bucket("salt", "dep", k) for k in keys]
    code = ("from gateway.traffic.hashing import bucket; "
            f"print([bucket('salt', 'dep', k) for k in {keys!r}])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout
    assert orjson.loads(out) == here
    assert all(0 <= b < BUCKETS for b in here)


def test_salt_changes_assignment() -> None:
    keys = [f"user-{i}" for i in range(1000)]
    same = sum(bucket("a", "dep", k) == bucket("b", "dep", k) for k in keys)
    assert same < 20


def test_canary_share_and_monotonic_raise() -> None:
    keys = [f"user-{i}" for i in range(20_000)]
    at10 = {k: route(plan(10), k).variant for k in keys}
    share = sum(v == "canary" for v in at10.values()) / len(keys)
    assert 0.09 <= share <= 0.11
    at20 = {k: route(plan(20), k).variant for k in keys}
    assert all(at20[k] == "canary" for k, v in at10.items() if v == "canary")
    assert 0.19 <= sum(v == "canary" for v in at20.values()) / len(keys) <= 0.21


def test_canary_request_runs_champion_as_shadow() -> None:
    shadows = (ShadowPlan("s1:1", 100, 1.0), ShadowPlan("s2:1", 0, 1.0))
    p = plan(100, shadows)
    r = route(p, "someone")
    assert r.variant == "canary" and r.primary == "cand:1"
    assert [(s.model, s.role) for s in r.shadows] == [("champ:1", "champion"), ("s1:1", "shadow")]


def test_shadows_at_100_percent_go_with_every_request_of_either_variant() -> None:
    shadows = (ShadowPlan("s1:1", 100, 1.0), ShadowPlan("s2:1", 100, 2.0))
    p = plan(50, shadows)
    routes = [route(p, f"user-{i}") for i in range(200)]
    for variant, expected in (
        ("champion", [("s1:1", "shadow", 1.0), ("s2:1", "shadow", 2.0)]),
        ("canary", [("champ:1", "champion", 1.0), ("s1:1", "shadow", 1.0),
                    ("s2:1", "shadow", 2.0)]),
    ):
        seen = [[(s.model, s.role, s.timeout_s) for s in r.shadows]
                for r in routes if r.variant == variant]
        assert seen and all(calls == expected for calls in seen), variant


def test_sampling_percent_is_respected() -> None:
    rng = random.Random(7)
    p = plan(0, (ShadowPlan("s:1", 25, 1.0),))
    hits = sum(bool(route(p, None, rand=rng.random).shadows) for _ in range(10_000))
    assert 2300 <= hits <= 2700


def test_requests_without_key_get_random_buckets() -> None:
    rng = random.Random(1)
    buckets = {route(plan(10), None, rand=rng.random).bucket for _ in range(500)}
    assert len(buckets) > 400
    assert route(plan(10), None).key_hash is None


def test_forced_variant() -> None:
    p = plan(0)
    assert route(p, "k", forced="canary").primary == "cand:1"
    assert route(p, "k", forced="cand").primary == "cand:1"
    assert route(plan(100), "k", forced="champion").primary == "champ:1"
