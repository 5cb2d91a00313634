"""Encoded paired records (stream payloads) -> Batch columns, fast.

A report reads millions of records, so decoding is the hot loop: records are decoded with
msgspec into typed structs that the cyclic garbage collector does not track (``gc=False``: a
record is a tree, never a cycle), a page at a time, and copied into numpy columns with as
little Python per record as the format allows. The layout is the paired record's, schema v1
(gateway/predlog/record.py); fields this module does not need are skipped by the decoder.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from gateway.analysis.batch import (
    CANARY,
    CHAMPION,
    ROLE_CODES,
    STATUS_CODES,
    Batch,
    ModelColumns,
    empty_model,
)


class Tensor(msgspec.Struct, gc=False):
    datatype: str = ""
    shape: list[int] = []
    data: Any = None


class Output(msgspec.Struct, gc=False):
    label: list[Any] | None = None
    scores: list[list[float | None]] | None = None
    classes: list[str] | None = None
    tensors: dict[str, Tensor] | None = None


class Prediction(msgspec.Struct, gc=False):
    role: str
    model: str
    version: str
    status: str = "ok"
    latency_ms: float | None = None
    output: Output | None = None


class Record(msgspec.Struct, gc=False):
    request_id: str
    ts: float
    v: int = 1
    id: str | None = None
    bucket: int = 0
    variant: str = "champion"
    key_hash: str | None = None
    rows: int = 1
    predictions: list[Prediction] = []
    inputs: dict[str, Tensor] | None = None


_ONE = msgspec.json.Decoder(Record)
_PAGE = msgspec.json.Decoder(list[Record])


def decode_page(payloads: Sequence[bytes]) -> tuple[list[Record], int]:
    """Decode a page of payloads; returns the records and how many were undecodable.

    The page is decoded as one JSON array (one call into msgspec); when an entry is broken,
    the page is decoded entry by entry so that only the broken ones are skipped.
    """
    if not payloads:
        return [], 0
    try:
        return _PAGE.decode(b"[" + b",".join(payloads) + b"]"), 0
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    records, bad = [], 0
    for payload in payloads:
        try:
            records.append(_ONE.decode(payload))
        except (msgspec.DecodeError, msgspec.ValidationError):
            bad += 1
    return records, bad


@dataclass(frozen=True)
class Feedback:
    """What was posted for one request: its label (None: only outcomes), outcomes, delay."""

    label: Any
    outcomes: Mapping[str, float]
    received: float


@dataclass
class Layout:
    """How records map to columns: the report's classes and features, the outcomes it reads."""

    classes: tuple[str, ...]  # the champion's classes; () for a model without classes
    features: int  # input columns kept (the champion's feature count; 0: none)
    outcomes: tuple[str, ...] = ()
    _index: dict[Any, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {name: i for i, name in enumerate(self.classes)}

    def class_index(self, label: Any) -> int:
        """A label as a class index: a class name, or an index into the classes."""
        index = self._index.get(label)
        if index is not None:
            return index
        if type(label) is int and 0 <= label < len(self.classes):
            return label
        return -1

    def column_order(self, classes: list[str] | None) -> list[int] | None:
        """Where each of a model's score columns goes (None: already in report order)."""
        if classes is None or tuple(classes) == self.classes:
            return None
        return [self._index.get(c, -1) for c in classes]


def to_batch(records: Sequence[Record], feedback: Mapping[str, Feedback], layout: Layout
             ) -> Batch:
    """Columns of ``records``; ``feedback`` maps a request id (or V2 body id) to what was
    posted for it."""
    count = len(records)
    k = len(layout.classes)
    rows_of = [r.rows if r.rows > 0 else 1 for r in records]
    starts = np.zeros(count + 1, np.int64)
    np.cumsum(rows_of, out=starts[1:])
    n = int(starts[-1])
    batch = Batch(
        ts=np.fromiter((r.ts for r in records), np.float64, count),
        variant=np.fromiter((CANARY if r.variant == "canary" else CHAMPION for r in records),
                            np.int8, count),
        bucket=np.fromiter((r.bucket for r in records), np.int32, count),
        has_key=np.fromiter((r.key_hash is not None for r in records), np.bool_, count),
        label_delay_s=np.full(count, np.nan), outcomes={
            name: np.full(count, np.nan) for name in layout.outcomes},
        rec=np.repeat(np.arange(count, dtype=np.int32), rows_of),
        truth=np.full(n, -1, np.int16), truth_value=np.full(n, np.nan),
        inputs=np.full((n, layout.features), np.nan, np.float32))
    _feedback(batch, records, feedback, layout, starts)
    if layout.features:
        _inputs(batch, records, starts, layout.features)
    for i, record in enumerate(records):
        start, rows = int(starts[i]), rows_of[i]
        for p in record.predictions:
            key = f"{p.model}:{p.version}"
            cols = batch.models.get(key)
            if cols is None:
                cols = batch.models[key] = empty_model(count, n, k)
            cols.status[i] = STATUS_CODES.get(p.status, 0)
            cols.role[i] = ROLE_CODES.get(p.role, 0)
            if p.latency_ms is not None:
                cols.latency_ms[i] = p.latency_ms
            if p.output is not None:
                _answer(cols, p.output, start, rows, layout)
    return batch


def _feedback(batch: Batch, records: Sequence[Record], feedback: Mapping[str, Feedback],
              layout: Layout, starts: np.ndarray) -> None:
    if not feedback:
        return
    for i, record in enumerate(records):
        got = feedback.get(record.request_id)
        if got is None and record.id is not None:
            got = feedback.get(record.id)
        if got is None:
            continue
        batch.label_delay_s[i] = got.received - record.ts
        for name, value in got.outcomes.items():
            column = batch.outcomes.get(name)
            if column is not None:
                column[i] = value
        label = got.label
        if label is None:
            continue
        start, end = int(starts[i]), int(starts[i + 1])
        labels = label if isinstance(label, list) else [label] if end - start == 1 else []
        if len(labels) != end - start:
            continue  # one label for a request of several rows: which row it is for is unknown
        for j, value in enumerate(labels):
            if layout.classes:
                batch.truth[start + j] = layout.class_index(value)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                batch.truth_value[start + j] = value


def _inputs(batch: Batch, records: Sequence[Record], starts: np.ndarray, width: int) -> None:
    rows: list[Any] = []
    where: list[int] = []
    for i, record in enumerate(records):
        if not record.inputs or len(record.inputs) != 1:
            continue
        tensor = next(iter(record.inputs.values()))
        shape = tensor.shape
        if len(shape) != 2 or shape[1] != width or shape[0] != starts[i + 1] - starts[i]:
            continue
        data = tensor.data
        if data and isinstance(data[0], list):
            rows.extend(data)
        else:  # flat data
            rows.extend(data[j:j + width] for j in range(0, len(data), width))
        where.extend(range(int(starts[i]), int(starts[i + 1])))
    if rows:
        with contextlib.suppress(TypeError, ValueError):  # not numeric: no drift for these
            batch.inputs[where] = np.asarray(rows, np.float32)


def _answer(cols: ModelColumns, output: Output, start: int, rows: int, layout: Layout) -> None:
    if output.label is not None and layout.classes:
        labels = output.label
        for j in range(min(rows, len(labels))):
            cols.pred[start + j] = layout.class_index(labels[j])
        scores = output.scores
        if scores and len(scores) == rows:
            block = np.asarray(scores, np.float64)  # None -> nan
            order = layout.column_order(output.classes)
            if order is None and block.shape[1] == cols.scores.shape[1]:
                cols.scores[start:start + rows] = block
            elif order is not None:
                for src, dst in enumerate(order):
                    if dst >= 0 and src < block.shape[1]:
                        cols.scores[start:start + rows, dst] = block[:, src]
    elif output.tensors:
        tensor = next(iter(output.tensors.values()))
        data = tensor.data
        flat = data if data and not isinstance(data[0], list) else [
            v[0] if isinstance(v, list) and v else math.nan for v in data or ()]
        for j in range(min(rows, len(flat))):
            value = flat[j]
            if isinstance(value, int | float) and not isinstance(value, bool):
                cols.value[start + j] = value
