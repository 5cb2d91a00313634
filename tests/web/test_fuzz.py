"""Property-style fuzzing: random and half-valid bodies never cause a 5xx, errors are JSON.

Seeded ``random.Random`` so a failure reproduces; the failing body is in the message.
The generator reached two 500s when it was written (``outputs`` on a deployment, floats beyond
the FP16/FP32 range); both have regression tests of their own as well.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from gateway.protocol.tensors import DTYPES
from tests.helpers import Harness, config, harness, v2_body

CASES = 300
PATHS = ["/v2/models/breast-cancer/infer", "/v2/models/bc-gbt/versions/1/infer", "/predict"]


@pytest.fixture(scope="module")
def h() -> Iterator[Harness]:
    with harness(config(), max_body_bytes=16384) as running:
        yield running


def scalar(rng: random.Random) -> Any:
    return rng.choice([
        lambda: rng.randint(-300, 300),
        lambda: rng.uniform(-1e4, 1e4),
        lambda: rng.choice([True, False, None, 0, 1, -1, 0.0, -0.0, 1e-45, 255, 256, -129]),
        lambda: rng.choice([70000.0, 1e39, -1e300, 2**31, 2**63, 2**64 - 1, -(2**63)]),
        lambda: rng.choice(["", "1.5", "nan", "inf", "x" * rng.randint(1, 20), "\u00e9\u2603"]),
    ])()


def value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth >= 3 or roll < 0.5:
        return scalar(rng)
    if roll < 0.8:
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["a", "name", "data", "shape", "", "inputs"]): value(rng, depth + 1)
            for _ in range(rng.randint(0, 3))}


def shape(rng: random.Random) -> Any:
    if rng.random() < 0.2:
        return value(rng)
    return [rng.choice([0, 1, 2, 3, 10, 29, 30, 31, 60, -1, 1.0, True])
            for _ in range(rng.randint(0, 5))]


def data(rng: random.Random, rows: list[list[float]]) -> Any:
    kind = rng.randrange(6)
    if kind == 0:
        return value(rng)
    if kind == 1:  # the rows with one element swapped for something random
        out = copy.deepcopy(rows)
        r = rng.randrange(len(out))
        out[r][rng.randrange(len(out[r]))] = value(rng)
        return out
    if kind == 2:  # ragged
        out = copy.deepcopy(rows)
        out[rng.randrange(len(out))] = out[0][: rng.randint(0, 40)]
        return out
    if kind == 3:  # flat, maybe with the wrong count
        return [v for r in rows for v in r][: rng.randint(0, 31 * len(rows))]
    if kind == 4:  # nested one level too deep
        return [[[v] for v in r] for r in rows]
    return [[scalar(rng) for _ in range(rng.choice([30, 29, 1]))] for _ in rows]


def benign(rng: random.Random, rows: list[list[float]]) -> dict[str, Any]:
    """A valid body with optional fields: id, parameters, outputs, flat data."""
    body: dict[str, Any] = v2_body(rows)
    if rng.random() < 0.5:
        body["id"] = rng.choice(["", "r-1", "\u00e9" * 40])
    if rng.random() < 0.5:
        body["parameters"] = {"k": value(rng)}
    if rng.random() < 0.5:
        body["inputs"][0]["data"] = [v for r in rows for v in r]
    if rng.random() < 0.5:
        body["inputs"][0]["parameters"] = {"content_type": "np"}
    if rng.random() < 0.5:
        body["outputs"] = [{"name": n} for n in rng.sample(["label", "probabilities"],
                                                           rng.randint(1, 2))]
    return body


def v2_mutant(rng: random.Random, rows: list[list[float]]) -> Any:
    body = benign(rng, rows)
    tensor = body["inputs"][0]
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        op = rng.randrange(10)
        if op == 0:
            tensor.pop(rng.choice(["name", "shape", "datatype", "data"]), None)
        elif op == 1:
            tensor["datatype"] = rng.choice([*DTYPES, "fp32", "FLOAT", "", 32, None])
        elif op == 2:
            tensor["shape"] = shape(rng)
        elif op == 3:
            tensor["data"] = data(rng, rows)
        elif op == 4:
            tensor["name"] = rng.choice(["", "inputs", "x", None, 3, "input"])
        elif op == 5:
            body[rng.choice(["id", "parameters", "inputs", "extra"])] = value(rng)
        elif op == 6:
            body["outputs"] = rng.choice([value(rng), [{"name": rng.choice(["x", "", "label"])}],
                                          [{"nom": "label"}], [None], {"name": "label"}])
        elif op == 7 and isinstance(body.get("inputs"), list):
            body["inputs"].append(rng.choice([copy.deepcopy(tensor), value(rng),
                                              {**copy.deepcopy(tensor), "name": "second"}]))
        elif op == 8:
            tensor[rng.choice(["parameters", "contents", "binary"])] = value(rng)
        elif op == 9:
            return rng.choice([value(rng), body["inputs"], tensor, {"inputs": value(rng)}])
    return body


def predict_mutant(rng: random.Random, rows: list[list[float]]) -> Any:
    op = rng.randrange(6)
    if op == 0:
        return {"instances": rng.choice([rows, data(rng, rows)])}
    if op == 1:
        return {"instances": rows, rng.choice(["id", "extra", "inputs"]): value(rng)}
    if op == 2:
        return {"instances": [{str(value(rng)): value(rng) for _ in range(rng.randint(0, 3))}]}
    if op == 3:
        return value(rng)
    if op == 4:
        return {"instances": [rows[0], {str(i): v for i, v in enumerate(rows[0])}]}
    return {"instances": [rows[0]] * rng.randint(0, 3) + [value(rng)]}


def raw_body(rng: random.Random, rows: list[list[float]]) -> bytes:
    valid = orjson.dumps(v2_body(rows))
    op = rng.randrange(4)
    if op == 0:
        return valid[: rng.randrange(len(valid))]
    if op == 1:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    if op == 2:
        i = rng.randrange(len(valid))
        return valid[:i] + bytes([rng.randrange(256)]) + valid[i + 1:]
    return rng.choice([b"NaN", b"[" * 2000, b'{"inputs": [' * 300, b"\xff\xfe", b"1e999",
                       b'{"instances": [[1e999]]}', b'{"instances": [[-9223372036854775809]]}',
                       b"\x00", b" "])


def bodies(seed: int, holdout: list[dict[str, Any]]) -> Iterator[tuple[str, bytes]]:
    rng = random.Random(seed)
    for _ in range(CASES):
        rows = [holdout[rng.randrange(len(holdout))]["features"] for _ in range(rng.randint(1, 3))]
        path = rng.choice(PATHS)
        kind = rng.random()
        if kind < 0.15:
            yield path, raw_body(rng, rows)
        elif path == "/predict":
            yield path, orjson.dumps(predict_mutant(rng, rows))
        else:
            yield path, orjson.dumps(v2_mutant(rng, rows))


@pytest.mark.parametrize("seed", [1, 2])
def test_random_bodies_never_cause_a_server_error(h: Harness, holdout: list[dict[str, Any]],
                                                  seed: int) -> None:
    statuses: dict[int, int] = {}
    for path, body in bodies(seed, holdout):
        r = h.client.post(path, content=body, headers={"content-type": "application/json"})
        where = f"POST {path} {body[:600]!r} -> {r.status_code} {r.text[:300]}"
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code < 500, where
        assert r.headers["content-type"] == "application/json", where
        assert "x-request-id" in r.headers, where
        payload = orjson.loads(r.content)
        if r.status_code != 200:
            assert isinstance(payload, dict) and list(payload) == ["error"], where
            assert isinstance(payload["error"], str) and payload["error"], where
        else:
            assert isinstance(payload, dict) and ("outputs" in payload
                                                  or "predictions" in payload), where
    # The generator must reach both outcomes, or it tests nothing.
    assert statuses.get(400, 0) > CASES // 2, statuses
    assert statuses.get(200, 0) > CASES // 10, statuses
