"""Assembling one paired record from the answering model and every sampled shadow.

Outputs are normalised so that models which say the same thing in different shapes record
the same: a classifier's labels become class names (class indices, integral floats, bytes
or strings alike, ``[n]`` or ``[n, 1]``) beside its class scores; raw tensors drop a trailing
dimension of 1 (``[n, 1]`` is recorded as ``[n]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gateway.backends.base import Backend
from gateway.predlog.record import PairedRecord, Prediction, Status, Variant
from gateway.predlog.sink import RecordSink
from gateway.protocol.signature import ClassifierInfo
from gateway.protocol.tensors import Array, datatype_of


def tensors_json(arrays: dict[str, Array]) -> dict[str, Any]:
    """{name: {datatype, shape, data}}; numeric data stays numpy for orjson."""
    out: dict[str, Any] = {}
    for name, array in arrays.items():
        datatype = datatype_of(array)
        data: Any = array.tolist() if datatype == "BYTES" else array
        out[name] = {"datatype": datatype, "shape": list(array.shape), "data": data}
    return out


def output_json(backend: Backend, outputs: dict[str, Array]) -> dict[str, Any]:
    """Classifiers log label names and scores; other models (and a classifier's answer
    without its label or scores output) their raw output tensors."""
    info = backend.classifier
    if info is not None and info.label_output in outputs and info.scores_output in outputs:
        return {"label": label_names(info, outputs[info.label_output]),
                "scores": outputs[info.scores_output], "classes": info.class_labels}
    return {"tensors": tensors_json(_squeezed(outputs))}


def _squeezed(outputs: dict[str, Array]) -> dict[str, Array]:
    """Each tensor without a trailing dimension of 1 (``[n, 1]`` -> ``[n]``)."""
    return {k: a.reshape(a.shape[:-1]) if a.ndim >= 2 and a.shape[-1] == 1 else a
            for k, a in outputs.items()}


def label_names(info: ClassifierInfo, labels: Array) -> list[Any]:
    """Class names for a label tensor (indices into the card's labels, or strings)."""
    if labels.dtype.kind == "f" and np.array_equal(labels, np.round(labels)):
        labels = labels.astype(np.int64)  # a server that sends class indices as floats
    if labels.dtype.kind in "iu":
        names = info.class_labels
        return [names[i] if 0 <= i < len(names) else str(i) for i in labels.ravel().tolist()]
    return [v.decode() if isinstance(v, bytes) else v for v in labels.ravel().tolist()]


def batch_outputs_json(backend: Backend, outputs: dict[str, Array],
                       rows: list[int]) -> list[dict[str, Any]]:
    """``output_json`` of each job of a concatenated micro-batch (``rows`` per job), with
    the class names looked up once for the whole batch."""
    total = sum(rows)
    info = backend.classifier
    out: list[dict[str, Any]] = []
    offset = 0
    if info is None or info.label_output not in outputs or info.scores_output not in outputs:
        outputs = _squeezed(outputs)
        for n in rows:
            out.append({"tensors": tensors_json(
                {k: (a[offset:offset + n] if a.ndim and a.shape[0] == total else a)
                 for k, a in outputs.items()})})
            offset += n
        return out
    label = label_names(info, outputs[info.label_output])
    scores = outputs[info.scores_output]
    if len(label) != total or len(scores) != total:
        raise ValueError(f"batch of {total} rows answered with {len(label)} labels and "
                         f"{len(scores)} score rows")
    for n in rows:
        out.append({"label": label[offset:offset + n], "scores": scores[offset:offset + n],
                    "classes": info.class_labels})
        offset += n
    return out


class PendingRecord:
    """A record waiting for its shadows; the last one to answer hands it to the sink."""

    __slots__ = ("record", "sink", "waiting")

    def __init__(self, record: PairedRecord, sink: RecordSink, waiting: int) -> None:
        self.record = record
        self.sink = sink
        self.waiting = waiting
        if waiting == 0:
            sink.submit(record)

    def resolve(self, slot: int, status: Status, latency_s: float | None,
                error: str | None = None, output: dict[str, Any] | None = None) -> None:
        """Fill in one shadow's entry; the last one hands the record to the sink."""
        entry = self.record["predictions"][slot]
        entry["status"] = status
        entry["latency_ms"] = None if latency_s is None else round(latency_s * 1000, 4)
        entry["error"] = error
        entry["output"] = output
        self.waiting -= 1
        if self.waiting == 0:
            self.sink.submit(self.record)


def new_record(request_id: str, ts: float, deployment: str, revision: str,
               key_hash: str | None, bucket: int, variant: Variant, rows: int,
               predictions: list[Prediction], inputs: dict[str, Any] | None,
               body_id: str | None = None) -> PairedRecord:
    """``body_id``: the ``id`` the caller sent in the body (empty counts as none)."""
    return PairedRecord(v=1, request_id=request_id, id=body_id or None, ts=ts,
                        deployment=deployment,
                        revision=revision, key_hash=key_hash, bucket=bucket, variant=variant,
                        rows=rows, predictions=predictions, inputs=inputs)


