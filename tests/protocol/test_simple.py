"""gateway/protocol/simple.py: /predict rows -> one tensor, outputs -> labelled predictions."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.errors import BadRequest, InvalidInput
from gateway.protocol.signature import ClassifierInfo
from gateway.protocol.simple import predictions, rows_array

FEATURES = ("a", "b", "c")
INFO = ClassifierInfo(("malignant", "benign"), "label", "probabilities", FEATURES)


def test_lists_and_objects_give_the_same_array() -> None:
    lists = rows_array([[1, 2, 3], [4, 5, 6.5]], FEATURES, "FP32")
    objects = rows_array([{"c": 3, "a": 1, "b": 2}, {"b": 5, "c": 6.5, "a": 4}], FEATURES, "FP32")
    assert lists.dtype == objects.dtype == np.float32
    assert lists.shape == (2, 3)
    np.testing.assert_array_equal(lists, objects)


@pytest.mark.parametrize(("instances", "words"), [
    (None, ("instances", "non-empty array", "NoneType")),
    ([], ("instances", "empty array")),
    ({"a": 1}, ("instances", "dict")),
])
def test_instances_must_be_a_non_empty_array(instances: object, words: tuple[str, ...]) -> None:
    with pytest.raises(BadRequest) as info:
        rows_array(instances, FEATURES, "FP32")
    for word in words:
        assert word in str(info.value)


def test_missing_and_unknown_features_are_named() -> None:
    with pytest.raises(InvalidInput) as info:
        rows_array([{"a": 1, "b": 2, "c": 3}, {"a": 1, "x": 2}], FEATURES, "FP32")
    msg = str(info.value)
    assert "instances[1]" in msg and "['b', 'c']" in msg and "['x']" in msg


def test_row_length_and_kind() -> None:
    with pytest.raises(InvalidInput, match=r"instances\[1\].*3 feature values.*got 2 values"):
        rows_array([[1, 2, 3], [1, 2]], FEATURES, "FP32")
    with pytest.raises(InvalidInput, match=r"instances\[0\].*got str"):
        rows_array(["abc"], FEATURES, "FP32")
    with pytest.raises(BadRequest, match=r"instances\[1\].*object like instances\[0\].*list"):
        rows_array([{"a": 1, "b": 2, "c": 3}, [1, 2, 3]], FEATURES, "FP32")


def test_values_are_checked_like_v2_data() -> None:
    with pytest.raises(InvalidInput, match=r"FP32.*strings"):
        rows_array([[1, "2", 3]], FEATURES, "FP32")
    with pytest.raises(InvalidInput, match="nested"):
        rows_array([[[1], [2], [3]]], FEATURES, "FP32")


def test_predictions_label_names_and_probabilities() -> None:
    outputs = {"label": np.array([1, 0], dtype=np.int64),
               "probabilities": np.array([[0.1234567, 0.8765433], [0.9, 0.1]], dtype=np.float32)}
    preds = predictions(INFO, outputs)
    assert [p["label"] for p in preds] == ["benign", "malignant"]
    assert preds[0]["probabilities"] == {"malignant": pytest.approx(0.123457, abs=1e-6),
                                         "benign": pytest.approx(0.876543, abs=1e-6)}
    assert list(preds[1]["probabilities"]) == ["malignant", "benign"]


def test_predictions_with_string_or_unknown_labels() -> None:
    outputs = {"label": np.array([b"benign", 7], dtype=object),
               "probabilities": np.array([[0.2, 0.8], [0.5, 0.5]])}
    preds = predictions(INFO, outputs)
    assert preds[0]["label"] == "benign"
    assert preds[1]["label"] == 7  # out of range: passed through, not mislabelled
