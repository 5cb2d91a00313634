"""The simple JSON endpoint for apps: rows in feature order or keyed by feature name.

Request:  {"instances": [[f1, f2, ...], ...]}  or  {"instances": [{"mean radius": 14.1, ...}]}
Response: {"id", "deployment", "model", "version", "variant",
           "predictions": [{"label": "benign", "probabilities": {"malignant": 0.02, ...}}]}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.errors import BadRequest, InvalidInput
from gateway.protocol.signature import ClassifierInfo
from gateway.protocol.tensors import Array
from gateway.protocol.v2 import to_array

MAX_FIELDS = frozenset({"instances", "id"})


def rows_array(instances: Any, features: Sequence[str], datatype: str) -> Array:
    """A [rows, features] array from lists in feature order or objects keyed by name."""
    if not isinstance(instances, list) or not instances:
        raise BadRequest("instances: expected a non-empty array of rows, got "
                         f"{'an empty array' if instances == [] else type(instances).__name__}")
    width = len(features)
    rows: list[Any] = instances
    if isinstance(instances[0], dict):
        known = set(features)
        rows = []
        for i, row in enumerate(instances):
            if not isinstance(row, dict):
                raise BadRequest(f"instances[{i}]: expected an object like instances[0], got "
                                 f"{type(row).__name__}")
            if row.keys() != known:
                missing = [f for f in features if f not in row]
                unknown = sorted(row.keys() - known)
                raise InvalidInput(f"instances[{i}]: missing features {missing[:5]}"
                                   f"{'...' if len(missing) > 5 else ''}, unknown features "
                                   f"{unknown[:5]}; expected the {width} features of the "
                                   "model card")
            rows.append([row[f] for f in features])
    else:
        for i, row in enumerate(instances):
            if not isinstance(row, list) or len(row) != width:
                got = f"{len(row)} values" if isinstance(row, list) else type(row).__name__
                raise InvalidInput(f"instances[{i}]: expected a list of {width} feature values "
                                   f"in card order, got {got}")
    return to_array(rows, datatype, [len(rows), width], "instances")


def predictions(info: ClassifierInfo, outputs: dict[str, Array]) -> list[dict[str, Any]]:
    """Per row: class name and probabilities keyed by class name."""
    names = info.class_labels
    labels = outputs[info.label_output].ravel().tolist()
    scores = outputs[info.scores_output].tolist()
    out = []
    for label, row in zip(labels, scores, strict=True):
        if isinstance(label, int) and 0 <= label < len(names):
            label = names[label]
        elif isinstance(label, bytes):
            label = label.decode()
        out.append({"label": label,
                    "probabilities": {n: round(p, 6) for n, p in zip(names, row, strict=False)}})
    return out
