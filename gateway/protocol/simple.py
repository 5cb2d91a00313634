"""The simple JSON endpoint for apps: rows in feature order or keyed by feature name.

Request:  {"instances": [[f1, f2, ...], ...]}  or  {"instances": [{"mean radius": 14.1, ...}]}
Response: {"id", "deployment", "model", "version", "variant",
           "predictions": [{"label": "benign", "probabilities": {"malignant": 0.02, ...}}]}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.errors import BadRequest, InvalidInput
from gateway.protocol.signature import ClassifierInfo, Signature
from gateway.protocol.tensors import Array, InferenceRequest
from gateway.protocol.v2 import to_array

MAX_FIELDS = frozenset({"instances", "id"})


def decode_request(payload: Any, model: str, signature: Signature,
                   info: ClassifierInfo | None, json_field: str | None = None
                   ) -> InferenceRequest:
    """Validate a simple-endpoint body for ``model`` and decode its rows.

    ``json_field``: the deployment's routing key field, allowed beside ``instances`` and ``id``;
    it is passed on in ``parameters``, where the routing key is read from on either protocol.
    """
    if info is None or not info.features or len(signature.inputs) != 1:
        why = ("has no feature list in its card" if info is None or not info.features
               else "takes several input tensors" if signature.inputs_known
               else "has unknown inputs (declare them in the config)")
        raise BadRequest(f"model {model!r} {why}; use POST /v2/models/{model}/infer")
    if not isinstance(payload, dict):
        raise BadRequest(f"body: expected a JSON object, got {type(payload).__name__}")
    allowed = MAX_FIELDS if json_field is None else MAX_FIELDS | {json_field}
    unknown = payload.keys() - allowed
    if unknown:
        raise BadRequest(f"body: unknown field(s) {sorted(unknown)}; expected {sorted(allowed)}")
    spec = signature.inputs[0]
    array = rows_array(payload.get("instances"), info.features, spec.datatype)
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f"id: expected a string, got {type(request_id).__name__}")
    parameters = None
    if json_field is not None and json_field in payload:
        parameters = {json_field: payload[json_field]}
    return InferenceRequest({spec.name: array}, id=request_id, parameters=parameters,
                            finite=True)


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
