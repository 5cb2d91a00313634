"""Outputs normalised before pairing: the same answer in another shape records the same."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gateway.protocol.signature import ClassifierInfo
from gateway.traffic.pairing import batch_outputs_json, label_names, output_json

INFO = ClassifierInfo(("malignant", "benign"), "label", "probabilities")
SCORES = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]], dtype=np.float32)


class Model:
    def __init__(self, classifier: ClassifierInfo | None) -> None:
        self.classifier = classifier


@pytest.mark.parametrize("labels", [
    np.array([0, 1, 1], dtype=np.int64),
    np.array([[0], [1], [1]], dtype=np.int64),
    np.array([[0.0], [1.0], [1.0]]),
    np.array([b"malignant", b"benign", b"benign"], dtype=object),
    np.array([["malignant"], ["benign"], ["benign"]], dtype=object),
])
def test_labels_in_any_form_become_class_names(labels: np.ndarray) -> None:
    assert label_names(INFO, labels) == ["malignant", "benign", "benign"]
    out: Any = output_json(Model(INFO), {"label": labels, "probabilities": SCORES})
    assert out["label"] == ["malignant", "benign", "benign"]
    assert out["classes"] == ("malignant", "benign")
    per_job = batch_outputs_json(Model(INFO), {"label": labels, "probabilities": SCORES},
                                 [2, 1])
    assert [j["label"] for j in per_job] == [["malignant", "benign"], ["benign"]]


def test_fractional_float_labels_are_not_indices() -> None:
    assert label_names(INFO, np.array([0.5, 1.0])) == [0.5, 1.0]


def test_raw_tensors_drop_a_trailing_one() -> None:
    column = {"y": np.array([[1.5], [2.5]], dtype=np.float32)}
    flat = {"y": np.array([1.5, 2.5], dtype=np.float32)}
    a, b = output_json(Model(None), column), output_json(Model(None), flat)
    assert a["tensors"]["y"]["shape"] == b["tensors"]["y"]["shape"] == [2]
    jobs = batch_outputs_json(Model(None), column, [1, 1])
    assert [j["tensors"]["y"]["shape"] for j in jobs] == [[1], [1]]
    wide = output_json(Model(None), {"y": np.zeros((2, 3))})
    assert wide["tensors"]["y"]["shape"] == [2, 3]


def test_a_classifier_answer_without_its_outputs_is_recorded_as_tensors() -> None:
    out = output_json(Model(INFO), {"other": np.array([[1], [0]])})
    assert out == {"tensors": {"other": {"datatype": "INT64", "shape": [2],
                                         "data": out["tensors"]["other"]["data"]}}}
    jobs = batch_outputs_json(Model(INFO), {"other": np.array([[1], [0]])}, [1, 1])
    assert [list(j["tensors"]) for j in jobs] == [["other"], ["other"]]
