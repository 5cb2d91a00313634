"""Parity: the gateway answers exactly what onnxruntime answers on the same float32 rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.helpers import MODEL_NAMES, Harness, config, harness, onnx_direct, v2_body

SINGLE_ROWS = (0, 1, 71, 142)


@pytest.fixture(scope="module")
def h() -> Iterator[Harness]:
    with harness(config()) as running:
        yield running


def direct(name: str, rows: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    want = onnx_direct(name, rows)
    return want["label"], want["probabilities"]


def outputs(body: dict[str, Any]) -> dict[str, np.ndarray]:
    dtypes = {"INT64": np.int64, "FP32": np.float32}
    return {o["name"]: np.asarray(o["data"], dtype=dtypes[o["datatype"]]).reshape(o["shape"])
            for o in body["outputs"]}


def infer(h: Harness, path: str, rows: list[list[float]]) -> dict[str, np.ndarray]:
    r = h.client.post(path, json=v2_body(rows))
    assert r.status_code == 200, r.text
    return outputs(r.json())


def paths(name: str) -> list[str]:
    return [f"/v2/models/{name}/infer", f"/v2/models/{name}/versions/1/infer"]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_whole_holdout_in_one_request_matches_onnxruntime(
        h: Harness, holdout: list[dict[str, Any]], name: str) -> None:
    rows = [r["features"] for r in holdout]
    assert len(rows) == 143
    want_label, want_proba = direct(name, rows)
    for path in paths(name):
        got = infer(h, path, rows)
        assert got["label"].shape == (143,)
        assert got["probabilities"].shape == (143, 2)
        np.testing.assert_array_equal(got["label"], want_label)
        np.testing.assert_allclose(got["probabilities"], want_proba, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_batches_of_odd_sizes_match_onnxruntime(
        h: Harness, holdout: list[dict[str, Any]], name: str) -> None:
    rows = [r["features"] for r in holdout]
    want_label, want_proba = direct(name, rows)
    start = 0
    for size in (7, 50, 86):  # 143 rows in three uneven batches
        got = infer(h, paths(name)[start % 2], rows[start:start + size])
        np.testing.assert_array_equal(got["label"], want_label[start:start + size])
        np.testing.assert_allclose(got["probabilities"], want_proba[start:start + size],
                                   rtol=0, atol=1e-6)
        start += size
    assert start == len(rows)


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("index", SINGLE_ROWS)
def test_single_rows_match_onnxruntime(
        h: Harness, holdout: list[dict[str, Any]], name: str, index: int) -> None:
    row = holdout[index]["features"]
    want_label, want_proba = direct(name, [row])
    for path in paths(name):
        got = infer(h, path, [row])
        np.testing.assert_array_equal(got["label"], want_label)
        np.testing.assert_allclose(got["probabilities"], want_proba, rtol=0, atol=1e-6)


def test_models_disagree_somewhere(h: Harness, holdout: list[dict[str, Any]]) -> None:
    """Guards the parity tests: a gateway answering every name with one model would fail."""
    rows = [r["features"] for r in holdout]
    probas = [infer(h, f"/v2/models/{n}/infer", rows)["probabilities"] for n in MODEL_NAMES]
    for i in range(len(probas)):
        for j in range(i + 1, len(probas)):
            assert np.abs(probas[i] - probas[j]).max() > 1e-3


def test_deployment_answers_like_its_champion(h: Harness, holdout: list[dict[str, Any]]) -> None:
    rows = [r["features"] for r in holdout]
    want_label, want_proba = direct("bc-logreg", rows)
    got = infer(h, "/v2/models/breast-cancer/infer", rows)
    np.testing.assert_array_equal(got["label"], want_label)
    np.testing.assert_allclose(got["probabilities"], want_proba, rtol=0, atol=1e-6)


def test_gateway_accuracy_matches_the_card(h: Harness, holdout: list[dict[str, Any]]) -> None:
    rows = [r["features"] for r in holdout]
    truth = np.array([r["label"] for r in holdout])
    got = infer(h, "/v2/models/bc-logreg/infer", rows)
    assert round(float((got["label"] == truth).mean()), 4) == 0.9860


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_predict_endpoint_matches_onnxruntime(
        h: Harness, holdout: list[dict[str, Any]], name: str) -> None:
    rows = [r["features"] for r in holdout]
    want_label, want_proba = direct(name, rows)
    r = h.client.post(f"/predict/{name}", json={"instances": rows})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    classes = ("malignant", "benign")
    assert [p["label"] for p in preds] == [classes[i] for i in want_label]
    got = np.array([[p["probabilities"][c] for c in classes] for p in preds])
    np.testing.assert_allclose(got, want_proba, rtol=0, atol=1e-6)  # rounded to 6 decimals
