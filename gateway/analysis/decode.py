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
from itertools import accumulate
from typing import Any

import msgspec
import numpy as np
import orjson

from gateway.analysis.batch import (
    CANARY,
    CHAMPION,
    ROLE_CODES,
    STATUS_CODES,
    Batch,
    ModelColumns,
    empty_model,
)

_NULL = msgspec.Raw(b"null")


class Tensor(msgspec.Struct, gc=False):
    datatype: str = ""
    shape: list[int] = []
    data: msgspec.Raw = _NULL  # parsed only where needed, a page at a time


class Output(msgspec.Struct, gc=False):
    label: list[Any] | None = None
    scores: list[list[float | None]] | None = None
    classes: msgspec.Raw = _NULL  # the same in every entry of a model: parsed once a page
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
_CLASSES = msgspec.json.Decoder(list[str] | None)
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

    def class_indices(self, labels: list[Any]) -> list[int]:
        """``class_index`` of each label, with one dict lookup per label when they are names."""
        get = self._index.get
        out = [get(label, -2) for label in labels]
        if -2 in out:
            out = [self.class_index(label) for label in labels]
        return out

    def column_order(self, classes: list[str] | None) -> list[int] | None:
        """Where each of a model's score columns goes (None: already in report order)."""
        if classes is None or tuple(classes) == self.classes:
            return None
        return [self._index.get(c, -1) for c in classes]


class _Gather:
    """One model's answers in a page, as Python lists until the page is done."""

    __slots__ = (
        "classes",
        "labels",
        "latency",
        "recs",
        "roles",
        "rows",
        "scored",
        "scores",
        "statuses",
        "value_rows",
        "values",
    )

    def __init__(self) -> None:
        self.recs: list[int] = []
        self.statuses: list[int] = []
        self.roles: list[int] = []
        self.latency: list[float] = []
        self.rows: list[int] = []  # row index of each label
        self.labels: list[Any] = []
        self.scored: list[int] = []  # row index of each score row
        self.scores: list[list[float | None]] = []
        self.value_rows: list[int] = []
        self.values: list[Any] = []
        self.classes: msgspec.Raw | None = None  # of the first scored entry


def to_batch(records: Sequence[Record], feedback: Mapping[str, Feedback], layout: Layout
             ) -> Batch:
    """Columns of ``records``; ``feedback`` maps a request id (or V2 body id) to what was
    posted for it."""
    count = len(records)
    rows_of = [r.rows if r.rows > 0 else 1 for r in records]
    starts = [0, *accumulate(rows_of)]
    n = starts[-1]
    batch = Batch(
        ts=np.fromiter((r.ts for r in records), np.float64, count),
        variant=np.fromiter((CANARY if r.variant == "canary" else CHAMPION for r in records),
                            np.int8, count),
        bucket=np.fromiter((r.bucket for r in records), np.int32, count),
        has_key=np.fromiter((r.key_hash is not None for r in records), np.bool_, count),
        keys=[r.key_hash for r in records],
        label_delay_s=np.full(count, np.nan), outcomes={
            name: np.full(count, np.nan) for name in layout.outcomes},
        rec=np.repeat(np.arange(count, dtype=np.int32), rows_of),
        truth=np.full(n, -1, np.int16), truth_value=np.full(n, np.nan),
        inputs=np.full((n, layout.features), np.nan, np.float32))
    _feedback(batch, records, feedback, layout, starts)
    if layout.features:
        _inputs(batch, records, starts, layout.features)
    gathered: dict[tuple[str, str], _Gather] = {}
    statuses, roles, has_classes = STATUS_CODES, ROLE_CODES, bool(layout.classes)
    for i, record in enumerate(records):
        start, rows = starts[i], rows_of[i]
        single = rows == 1
        for p in record.predictions:
            g = gathered.get((p.model, p.version))
            if g is None:
                g = gathered[(p.model, p.version)] = _Gather()
            g.recs.append(i)
            g.statuses.append(statuses.get(p.status, 0))
            g.roles.append(roles.get(p.role, 0))
            g.latency.append(math.nan if p.latency_ms is None else p.latency_ms)
            out = p.output
            if out is None:
                continue
            if out.label is not None and has_classes:
                labels, scores = out.label, out.scores
                if len(labels) == rows:
                    if single:
                        g.rows.append(start)
                    else:
                        g.rows.extend(range(start, start + rows))
                    g.labels.extend(labels)
                if scores is not None and len(scores) == rows:
                    if single:
                        g.scored.append(start)
                    else:
                        g.scored.extend(range(start, start + rows))
                    g.scores.extend(scores)
                    if g.classes is None:
                        g.classes = out.classes
            elif out.tensors:
                _values(g, out.tensors, start, rows)
    for (model, version), g in gathered.items():
        batch.models[f"{model}:{version}"] = _columns(g, count, n, layout)
    return batch


def _values(g: _Gather, tensors: dict[str, Tensor], start: int, rows: int) -> None:
    try:
        data = orjson.loads(memoryview(next(iter(tensors.values())).data))
    except orjson.JSONDecodeError:
        return
    flat = data if data and not isinstance(data[0], list) else [
        v[0] if isinstance(v, list) and v else math.nan for v in data or ()]
    if len(flat) == rows:
        g.value_rows.extend(range(start, start + rows))
        g.values.extend(v if isinstance(v, int | float) and not isinstance(v, bool)
                        else math.nan for v in flat)


def _columns(g: _Gather, records: int, rows: int, layout: Layout) -> ModelColumns:
    cols = empty_model(records, rows, len(layout.classes))
    recs = np.asarray(g.recs, np.int64)
    cols.status[recs] = g.statuses
    cols.role[recs] = g.roles
    cols.latency_ms[recs] = g.latency
    if g.labels:
        cols.pred[g.rows] = layout.class_indices(g.labels)
    if g.scores:
        order = None
        if g.classes is not None:
            with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                order = layout.column_order(_CLASSES.decode(g.classes))
        with contextlib.suppress(TypeError, ValueError):  # ragged rows: no scores this page
            block = np.asarray(g.scores, np.float64)  # None -> nan
            if order is None and block.shape[1] == cols.scores.shape[1]:
                cols.scores[g.scored] = block
            elif order is not None:
                for src, dst in enumerate(order):
                    if dst >= 0 and src < block.shape[1]:
                        cols.scores[g.scored, dst] = block[:, src]
    if g.values:
        cols.value[g.value_rows] = g.values
    return cols


def _feedback(batch: Batch, records: Sequence[Record], feedback: Mapping[str, Feedback],
              layout: Layout, starts: list[int]) -> None:
    if not feedback:
        return
    found: list[int] = []
    delays: list[float] = []
    label_rows: list[int] = []
    labels: list[Any] = []
    for i, record in enumerate(records):
        got = feedback.get(record.request_id)
        if got is None and record.id is not None:
            got = feedback.get(record.id)
        if got is None:
            continue
        found.append(i)
        delays.append(got.received - record.ts)
        for name, value in got.outcomes.items():
            column = batch.outcomes.get(name)
            if column is not None:
                column[i] = value
        label = got.label
        if label is None:
            continue
        start, end = starts[i], starts[i + 1]
        if end - start == 1 and not isinstance(label, list):
            label_rows.append(start)
            labels.append(label)
        elif isinstance(label, list) and len(label) == end - start:
            label_rows.extend(range(start, end))
            labels.extend(label)
        # else: one label for a request of several rows; which row it is for is unknown
    batch.label_delay_s[found] = delays
    if not labels:
        return
    if layout.classes:
        batch.truth[label_rows] = layout.class_indices(labels)
    else:
        batch.truth_value[label_rows] = [
            v if isinstance(v, int | float) and not isinstance(v, bool) else math.nan
            for v in labels]


def _inputs(batch: Batch, records: Sequence[Record], starts: list[int], width: int) -> None:
    """The single input tensor of each record, all parsed in one call for the page."""
    raws: list[bytes] = []
    where: list[int] = []
    for i, record in enumerate(records):
        if not record.inputs or len(record.inputs) != 1:
            continue
        tensor = next(iter(record.inputs.values()))
        shape = tensor.shape
        start, end = starts[i], starts[i + 1]
        if len(shape) != 2 or shape[1] != width or shape[0] != end - start:
            continue
        raws.append(tensor.data)
        if end - start == 1:
            where.append(start)
        else:
            where.extend(range(start, end))
    if not raws:
        return
    with contextlib.suppress(orjson.JSONDecodeError, TypeError, ValueError):
        parsed = orjson.loads(b"[" + b",".join(raws) + b"]")
        if len(parsed) == len(where):  # one row each (the usual case): one conversion
            values = np.asarray(parsed, np.float32)
        else:
            values = np.concatenate([np.asarray(d, np.float32).reshape(-1, width)
                                     for d in parsed])
        if values.size == len(where) * width:  # nested [rows, width] or flat per record
            batch.inputs[where] = values.reshape(len(where), width)
