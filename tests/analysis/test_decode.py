"""Encoded paired records -> Batch columns: every field lands where the accumulators read it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

from gateway.analysis.batch import CANARY, CHAMPION, ERROR, OK, SHADOW
from gateway.analysis.decode import Feedback, Layout, decode_page, to_batch

LAYOUT = Layout(("malignant", "benign"), 2, ("converted",))


def entry(model: str, role: str, labels: list[Any], scores: list[list[float]] | None,
          classes: list[str] | None = None, status: str = "ok") -> dict[str, Any]:
    output = None if status != "ok" else {
        "label": labels, "scores": scores, "classes": classes or ["malignant", "benign"]}
    return {"role": role, "model": model, "version": "1", "served": role != "shadow",
            "status": status, "latency_ms": 0.5 if status == "ok" else None,
            "error": None, "output": output}


def record(rid: str, preds: list[dict[str, Any]], rows: int = 1, **extra: Any) -> bytes:
    data = {"v": 1, "request_id": rid, "ts": 100.0, "deployment": "d", "revision": "r",
            "key_hash": None, "bucket": 7, "variant": "champion", "rows": rows,
            "predictions": preds,
            "inputs": {"input": {"datatype": "FP32", "shape": [rows, 2],
                                 "data": [[1.0, 2.0]] * rows}}}
    data.update(extra)
    return orjson.dumps(data)


def test_a_broken_entry_costs_only_itself() -> None:
    good = record("a", [entry("m", "champion", ["benign"], [[0.1, 0.9]])])
    records, bad = decode_page([good, b"{not json", b'{"v": 1}', good])
    assert bad == 2 and [r.request_id for r in records] == ["a", "a"]


def test_columns_of_a_page() -> None:
    payloads = [
        record("a", [entry("champ", "champion", ["benign"], [[0.2, 0.8]]),
                     entry("cand", "shadow", ["malignant"], [[0.7, 0.3]])]),
        record("b", [entry("cand", "canary", ["benign", "malignant"], [[0.4, 0.6], [0.9, 0.1]]),
                     entry("champ", "champion", [0, 1], [[0.6, 0.4], [0.3, 0.7]])],
               rows=2, variant="canary", key_hash="ff", id="v2-b"),
        record("c", [entry("champ", "champion", [], None, status="error")], inputs=None),
    ]
    records, bad = decode_page(payloads)
    feedback = {"a": Feedback("malignant", {"converted": 1.0}, 160.0),
                "v2-b": Feedback(["benign", "benign"], {}, 130.0)}
    batch = to_batch(records, feedback, LAYOUT)
    assert bad == 0 and (batch.records, batch.rows) == (3, 4)
    assert batch.rec.tolist() == [0, 1, 1, 2]
    assert batch.variant.tolist() == [CHAMPION, CANARY, CHAMPION]
    assert batch.has_key.tolist() == [False, True, False]
    assert batch.truth.tolist() == [0, 1, 1, -1]  # the second by the V2 body id
    assert batch.label_delay_s[:2].tolist() == [60.0, 30.0] and math.isnan(batch.label_delay_s[2])
    assert batch.outcomes["converted"][0] == 1.0 and np.isnan(batch.outcomes["converted"][1:]).all()
    champ, cand = batch.models["champ:1"], batch.models["cand:1"]
    assert champ.status.tolist() == [OK, OK, ERROR]
    assert cand.status.tolist() == [OK, OK, 0]
    assert cand.role.tolist()[:2] == [SHADOW, CANARY]
    assert champ.pred.tolist() == [1, 0, 1, -1]  # names and class indices alike
    assert cand.pred.tolist() == [0, 1, 0, -1]
    np.testing.assert_allclose(champ.scores[:3], [[0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert np.isnan(champ.scores[3]).all()
    assert batch.inputs[:3].tolist() == [[1.0, 2.0]] * 3 and np.isnan(batch.inputs[3]).all()


def test_scores_in_another_class_order_are_reordered() -> None:
    page = [record("a", [entry("champ", "champion", ["benign"], [[0.2, 0.8]]),
                         entry("cand", "shadow", ["benign"], [[0.9, 0.1]],
                               classes=["benign", "malignant"])])]
    batch = to_batch(decode_page(page)[0], {}, LAYOUT)
    np.testing.assert_allclose(batch.models["cand:1"].scores, [[0.1, 0.9]])
    assert batch.models["cand:1"].pred.tolist() == [1]


def test_one_label_for_several_rows_is_not_guessed() -> None:
    page = [record("a", [entry("champ", "champion", [1, 1], [[0.5, 0.5]] * 2)], rows=2)]
    batch = to_batch(decode_page(page)[0], {"a": Feedback("benign", {}, 101.0)}, LAYOUT)
    assert batch.truth.tolist() == [-1, -1]
    assert batch.label_delay_s.tolist() == [1.0]  # the feedback itself was seen


def test_models_without_classes_give_values() -> None:
    def regression(model: str, value: float) -> dict[str, Any]:
        return {"role": "champion" if model == "a" else "shadow", "model": model,
                "version": "1", "served": model == "a", "status": "ok", "latency_ms": 1.0,
                "error": None, "output": {"tensors": {"y": {"datatype": "FP32", "shape": [1, 1],
                                                            "data": [[value]]}}}}
    page = [record("r", [regression("a", 2.5), regression("b", 3.0)], inputs=None)]
    batch = to_batch(decode_page(page)[0], {"r": Feedback(2.0, {}, 100.0)},
                     Layout((), 0))
    assert batch.models["a:1"].value.tolist() == [2.5]
    assert batch.models["b:1"].value.tolist() == [3.0]
    assert batch.truth_value.tolist() == [2.0] and batch.truth.tolist() == [-1]


def test_unknown_labels_and_statuses_are_not_counted_as_classes() -> None:
    page = [record("a", [entry("champ", "champion", ["cat"], [[0.5, 0.5]])])]
    batch = to_batch(decode_page(page)[0], {"a": Feedback(7, {}, 100.0)}, LAYOUT)
    assert batch.models["champ:1"].pred.tolist() == [-1]
    assert batch.truth.tolist() == [-1]  # 7 is no class index of two classes
