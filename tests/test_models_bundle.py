"""Consistency checks for the bundled demo models under models/ (built by models/build.py).

Only onnxruntime / numpy / stdlib: these run without the ``train`` extra.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
SAMPLE_FILE = MODELS_DIR / "samples" / "breast-cancer-holdout.jsonl"
MODEL_NAMES = ["bc-logreg", "bc-gbt", "bc-rf", "bc-heavy"]
VERSION = "1"

CARD_KEYS = [
    "name",
    "version",
    "description",
    "task",
    "framework",
    "training_data",
    "features",
    "inputs",
    "outputs",
    "class_labels",
    "label_output",
    "scores_output",
    "metrics",
    "feature_stats",
    "sha256",
]
METRIC_KEYS = ["split", "rows", "accuracy", "roc_auc", "log_loss", "f1", "precision", "recall"]
# card datatype -> onnxruntime type string
ORT_TYPES = {"FP32": "tensor(float)", "INT64": "tensor(int64)"}


def _model_path(name: str) -> Path:
    return MODELS_DIR / name / VERSION / "model.onnx"


@pytest.fixture(scope="module")
def samples() -> dict[str, Any]:
    rows = [json.loads(line) for line in SAMPLE_FILE.read_text(encoding="utf-8").splitlines()]
    return {
        "rows": rows,
        "X": np.asarray([r["features"] for r in rows], dtype=np.float32),
        "y": np.asarray([r["label"] for r in rows], dtype=np.int64),
    }


@pytest.fixture(scope="module", params=MODEL_NAMES)
def bundle(request: pytest.FixtureRequest) -> dict[str, Any]:
    name = request.param
    card = json.loads((MODELS_DIR / name / VERSION / "card.json").read_text(encoding="utf-8"))
    blob = _model_path(name).read_bytes()
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    return {"name": name, "card": card, "blob": blob, "sess": sess}


@pytest.fixture(scope="module")
def outputs(bundle: dict[str, Any], samples: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    card = bundle["card"]
    label, proba = bundle["sess"].run(
        [card["label_output"], card["scores_output"]], {card["inputs"][0]["name"]: samples["X"]}
    )
    return np.asarray(label), np.asarray(proba)


def _roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties (same value as sklearn's roc_auc_score)."""
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    avg_rank = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = avg_rank[inverse]
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def test_card_shape(bundle: dict[str, Any]) -> None:
    card = bundle["card"]
    assert list(card) == CARD_KEYS
    assert card["name"] == bundle["name"]
    assert card["version"] == VERSION
    assert card["task"] == "binary-classification"
    assert card["class_labels"] == ["malignant", "benign"]
    assert list(card["metrics"]) == METRIC_KEYS
    data = card["training_data"]
    assert data["rows_train"] + data["rows_test"] == data["rows_total"] == 569
    assert card["metrics"]["rows"] == data["rows_test"]


def test_sha256_matches_file(bundle: dict[str, Any]) -> None:
    assert bundle["card"]["sha256"] == hashlib.sha256(bundle["blob"]).hexdigest()


def test_size_is_small(bundle: dict[str, Any]) -> None:
    # bc-heavy is the heavy candidate of the shadow benchmark: big on purpose, still small
    # enough for git.
    limit = 3_000_000 if bundle["card"]["name"] == "bc-heavy" else 1_000_000
    assert len(bundle["blob"]) < limit


def test_onnx_signature_matches_card(bundle: dict[str, Any]) -> None:
    card, sess = bundle["card"], bundle["sess"]
    inputs = sess.get_inputs()
    assert [i.name for i in inputs] == [i["name"] for i in card["inputs"]] == ["input"]
    assert [o.name for o in sess.get_outputs()] == [o["name"] for o in card["outputs"]]
    assert [o["name"] for o in card["outputs"]] == [card["label_output"], card["scores_output"]]
    for spec, meta in [
        *zip(card["inputs"], inputs, strict=True),
        *zip(card["outputs"], sess.get_outputs(), strict=True),
    ]:
        assert meta.type == ORT_TYPES[spec["datatype"]], spec["name"]
        assert len(meta.shape) == len(spec["shape"]), spec["name"]
        # dynamic batch dimension: -1 in the card, a symbolic (non-int) dim in the graph
        assert spec["shape"][0] == -1 and not isinstance(meta.shape[0], int), spec["name"]
        assert list(meta.shape[1:]) == spec["shape"][1:], spec["name"]
    assert card["inputs"][0]["shape"] == [-1, len(card["features"])]


def test_features_and_stats(bundle: dict[str, Any]) -> None:
    card = bundle["card"]
    features = card["features"]
    assert len(features) == 30 and len(set(features)) == 30
    assert list(card["feature_stats"]) == features
    for name, st in card["feature_stats"].items():
        edges, fractions = st["bin_edges"], st["bin_fractions"]
        assert len(edges) == 11 and len(fractions) == 10, name
        assert all(a <= b for a, b in itertools.pairwise(edges)), name
        assert edges[0] == st["min"] and edges[-1] == st["max"], name
        assert st["min"] <= st["mean"] <= st["max"] and st["std"] >= 0, name
        assert all(f >= 0 for f in fractions), name
        assert math.isclose(sum(fractions), 1.0, abs_tol=1e-6), name


def test_holdout_sample_matches_card(bundle: dict[str, Any], samples: dict[str, Any]) -> None:
    card = bundle["card"]
    rows = samples["rows"]
    assert len(rows) == card["training_data"]["rows_test"]
    assert samples["X"].shape == (len(rows), len(card["features"]))
    assert len({r["row"] for r in rows}) == len(rows)
    for r in rows:
        assert r["label_name"] == card["class_labels"][r["label"]]


def test_holdout_reproduces_card_metrics(
    bundle: dict[str, Any], samples: dict[str, Any], outputs: tuple[np.ndarray, np.ndarray]
) -> None:
    metrics = bundle["card"]["metrics"]
    y = samples["y"]
    label, proba = outputs
    assert label.dtype == np.int64 and label.shape == y.shape
    assert proba.dtype == np.float32 and proba.shape == (len(y), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)

    assert abs(float(np.mean(label == y)) - metrics["accuracy"]) <= 1e-6

    tp = int(np.sum((label == 1) & (y == 1)))
    precision = tp / int(np.sum(label == 1))
    recall = tp / int(np.sum(y == 1))
    f1 = 2 * precision * recall / (precision + recall)
    assert abs(precision - metrics["precision"]) <= 1e-6
    assert abs(recall - metrics["recall"]) <= 1e-6
    assert abs(f1 - metrics["f1"]) <= 1e-6

    # Score-based metrics may move in the last float32 bit across CPUs: looser tolerance.
    assert abs(_roc_auc(y, proba[:, 1].astype(np.float64)) - metrics["roc_auc"]) <= 1e-5
    p = proba.astype(np.float64)
    p /= p.sum(axis=1, keepdims=True)
    eps = np.finfo(np.float64).eps
    p_true = np.clip(p[np.arange(len(y)), y], eps, 1 - eps)
    assert abs(float(-np.mean(np.log(p_true))) - metrics["log_loss"]) <= 1e-5
