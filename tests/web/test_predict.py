"""POST /predict: rows in card order or keyed by feature name; labels and scores by class."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from tests.helpers import MODELS, Harness, config, harness, v2_body

FEATURES: list[str] = orjson.loads((MODELS / "bc-logreg" / "1" / "card.json").read_bytes()
                                   )["features"]


@pytest.fixture(scope="module")
def h() -> Iterator[Harness]:
    with harness(config()) as running:
        yield running


@pytest.fixture(scope="module")
def rows(holdout: list[dict[str, Any]]) -> list[list[float]]:
    return [r["features"] for r in holdout[:10]]


def keyed(row: list[float]) -> dict[str, float]:
    return dict(zip(FEATURES, row, strict=True))


def error_of(r: Any, status: int = 400) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    return str(r.json()["error"])


def test_rows_as_lists_and_as_objects_agree(h: Harness, rows: list[list[float]]) -> None:
    as_lists = h.client.post("/predict", json={"instances": rows})
    # Object keys in reverse order: the gateway must reorder by the card, not by position.
    reversed_objects = [dict(reversed(keyed(r).items())) for r in rows]
    as_objects = h.client.post("/predict", json={"instances": reversed_objects})
    assert as_lists.status_code == as_objects.status_code == 200
    assert as_lists.json()["predictions"] == as_objects.json()["predictions"]


def test_response_shape(h: Harness, rows: list[list[float]], holdout: list[dict[str, Any]]
                        ) -> None:
    body = h.client.post("/predict", json={"instances": rows, "id": "p-1"}).json()
    assert body["id"] == "p-1"
    assert (body["deployment"], body["model"], body["version"]) == ("breast-cancer",
                                                                    "bc-logreg", "1")
    assert body["variant"] == "champion"
    preds = body["predictions"]
    assert len(preds) == len(rows)
    for pred in preds:
        assert set(pred) == {"label", "probabilities"}
        assert pred["label"] in ("malignant", "benign")
        assert list(pred["probabilities"]) == ["malignant", "benign"]
        assert abs(sum(pred["probabilities"].values()) - 1) < 1e-5
        assert pred["label"] == max(pred["probabilities"], key=pred["probabilities"].get)
    # bc-logreg gets these ten right (98.6% accuracy on the hold-out set)
    assert [p["label"] for p in preds] == [r["label_name"] for r in holdout[:10]]


def test_predict_agrees_with_v2_infer(h: Harness, rows: list[list[float]]) -> None:
    simple = h.client.post("/predict", json={"instances": rows}).json()["predictions"]
    v2 = h.client.post("/v2/models/breast-cancer/infer", json=v2_body(rows)).json()
    labels, proba = v2["outputs"][0]["data"], v2["outputs"][1]["data"]
    assert [p["label"] for p in simple] == [("malignant", "benign")[i] for i in labels]
    assert [p["probabilities"]["benign"] for p in simple] == pytest.approx(proba[1::2],
                                                                          abs=1e-6)


def test_named_deployment_and_model(h: Harness, rows: list[list[float]]) -> None:
    r = h.client.post("/predict/breast-cancer", json={"instances": rows[:1]})
    assert r.status_code == 200 and r.json()["deployment"] == "breast-cancer"
    r = h.client.post("/predict/bc-rf", json={"instances": rows[:1]})
    assert r.status_code == 200
    assert (r.json()["deployment"], r.json()["model"], r.json()["variant"]) == (None, "bc-rf",
                                                                              None)


def test_unknown_deployment_is_404(h: Harness, rows: list[list[float]]) -> None:
    msg = error_of(h.client.post("/predict/nope", json={"instances": rows[:1]}), 404)
    assert "'nope'" in msg and "not found" in msg and "breast-cancer" in msg


def test_no_default_deployment_with_several_is_404(rows: list[list[float]]) -> None:
    deployments = [{"name": "one", "champion": "bc-logreg"}, {"name": "two", "champion": "bc-gbt"}]
    with harness(config(deployments)) as several:
        msg = error_of(several.client.post("/predict", json={"instances": rows[:1]}), 404)
        assert "one" in msg and "two" in msg and "/predict/<deployment>" in msg
        r = several.client.post("/predict/two", json={"instances": rows[:1]})
        assert r.json()["model"] == "bc-gbt"


def test_configured_default_deployment(rows: list[list[float]]) -> None:
    deployments = [{"name": "one", "champion": "bc-logreg"}, {"name": "two", "champion": "bc-gbt"}]
    with harness(config(deployments, server={"default_deployment": "two"})) as several:
        r = several.client.post("/predict", json={"instances": rows[:1]})
        assert r.status_code == 200 and r.json()["deployment"] == "two"


def test_missing_and_unknown_features_are_named(h: Harness, rows: list[list[float]]) -> None:
    row = keyed(rows[0])
    del row["mean radius"]
    row["mean radios"] = 1.0
    msg = error_of(h.client.post("/predict", json={"instances": [keyed(rows[1]), row]}))
    assert "instances[1]" in msg
    assert "'mean radius'" in msg and "'mean radios'" in msg


def test_only_missing_features(h: Harness, rows: list[list[float]]) -> None:
    row = keyed(rows[0])
    for name in FEATURES[:7]:
        del row[name]
    msg = error_of(h.client.post("/predict", json={"instances": [row]}))
    assert "missing features" in msg and "'mean radius'" in msg and "..." in msg


@pytest.mark.parametrize("width", [0, 29, 31])
def test_wrong_row_length(h: Harness, rows: list[list[float]], width: int) -> None:
    row = (rows[0] * 2)[:width]
    msg = error_of(h.client.post("/predict", json={"instances": [rows[0], row]}))
    assert "instances[1]" in msg and "30" in msg and f"{width} values" in msg


@pytest.mark.parametrize(("body", "words"), [
    ({"instances": []}, ("instances", "non-empty", "empty array")),
    ({}, ("instances", "non-empty", "NoneType")),
    ({"instances": "rows"}, ("instances", "str")),
    ({"instances": [1.5]}, ("instances[0]", "list of 30", "float")),
    ({"rows": [[1] * 30]}, ("unknown field", "'rows'", "instances")),
    ([[1] * 30], ("JSON object", "list")),
    ({"instances": [["x"] * 30]}, ("FP32", "strings")),
    ({"instances": [[None] * 30]}, ("FP32",)),
])
def test_bad_bodies(h: Harness, body: Any, words: tuple[str, ...]) -> None:
    msg = error_of(h.client.post("/predict", json=body))
    for word in words:
        assert word in msg, (word, msg)


def test_mixed_row_kinds(h: Harness, rows: list[list[float]]) -> None:
    msg = error_of(h.client.post("/predict", json={"instances": [keyed(rows[0]), rows[1]]}))
    assert "instances[1]" in msg and "object" in msg and "list" in msg
    msg = error_of(h.client.post("/predict", json={"instances": [rows[0], keyed(rows[1])]}))
    assert "instances[1]" in msg and "dict" in msg


def test_non_numeric_feature_value(h: Harness, rows: list[list[float]]) -> None:
    row = keyed(rows[0])
    row["mean area"] = "big"
    msg = error_of(h.client.post("/predict", json={"instances": [row]}))
    assert "FP32" in msg and "strings" in msg


def test_nested_lists_are_not_feature_values(h: Harness) -> None:
    """Regression: a row of 30 one-element lists was reshaped to [1, 30] and served."""
    msg = error_of(h.client.post("/predict", json={"instances": [[[1.0]] * 30]}))
    assert "instances" in msg and "nested" in msg


def test_errors_and_content_type(h: Harness, rows: list[list[float]]) -> None:
    r = h.client.post("/predict", content=b"{", headers={"content-type": "application/json"})
    assert "malformed JSON" in error_of(r)
    r = h.client.post("/predict", content=orjson.dumps({"instances": rows}),
                      headers={"content-type": "text/csv"})
    assert "content-type" in error_of(r, 415)


def test_body_limit_applies(rows: list[list[float]]) -> None:
    with harness(config(), max_body_bytes=1024) as small:
        msg = error_of(small.client.post("/predict", json={"instances": rows}), 413)
        assert "1024" in msg
