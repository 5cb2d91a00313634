"""Batch: one page of paired records as columns, the unit every accumulator consumes.

Two levels, because a request may carry several rows:

- record level (length R): when, which variant answered, the sticky bucket, feedback outcomes
  and its delay, and per model the call's status and latency (one call per request);
- row level (length N): the record each row belongs to (``rec``), the true label when one was
  posted, the input features, and per model its predicted class and class scores (or, for a
  model without classes, its first output value).

Both readers (the Redis stream and Parquet files) produce batches, so the statistics do not
care where the records came from. Classes are indices into the report's class list (the
champion's); -1 means none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

# Status codes of a model's entry in a record; ABSENT: the model did not see that request.
ABSENT, OK, ERROR, TIMEOUT, DROPPED, SHED = 0, 1, 2, 3, 4, 5
STATUS_CODES = {"ok": OK, "error": ERROR, "timeout": TIMEOUT, "dropped": DROPPED, "shed": SHED}
STATUS_NAMES = {code: name for name, code in STATUS_CODES.items()}

# Role codes; the variant of a record is CHAMPION or CANARY (who answered the caller).
CHAMPION, CANARY, SHADOW = 0, 1, 2
ROLE_CODES = {"champion": CHAMPION, "canary": CANARY, "shadow": SHADOW}

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
I8 = NDArray[np.int8]
I16 = NDArray[np.int16]
I32 = NDArray[np.int32]
B = NDArray[np.bool_]


@dataclass
class ModelColumns:
    """What one model said in a batch: record-level status/latency, row-level answers."""

    status: I8  # [R] ABSENT, OK, ...
    role: I8  # [R] CHAMPION, CANARY, SHADOW (meaningless where ABSENT)
    latency_ms: F32  # [R] NaN where not answered
    pred: I16  # [N] class index, -1 when not answered or not a classifier
    scores: F32  # [N, K] class scores in the report's class order, NaN when unknown
    value: F64  # [N] first output value of a model without classes, NaN otherwise


@dataclass
class Batch:
    """A page of records as columns (see the module docstring)."""

    ts: F64  # [R] request time, Unix seconds
    variant: I8  # [R] CHAMPION or CANARY
    bucket: I32  # [R] sticky bucket
    has_key: B  # [R] the request carried a routing key
    label_delay_s: F64  # [R] feedback received minus request time, NaN without feedback
    outcomes: dict[str, F64]  # name -> [R] NaN where not posted
    rec: I32  # [N] record index of each row
    truth: I16  # [N] true class index, -1 when unlabelled
    truth_value: F64  # [N] numeric true label (models without classes), NaN otherwise
    inputs: F32  # [N, F] input features in the report's feature order, NaN when not logged
    models: dict[str, ModelColumns] = field(default_factory=dict)  # "name:version" -> columns
    keys: list[str | None] | None = None  # [R] routing-key hash (None: no key); None: unknown

    def take(self, keep: B) -> Batch:
        """The batch of the records where ``keep`` (record level) is True, with their rows."""
        rows = keep[self.rec]
        index = np.cumsum(keep) - 1  # new record index of each kept record
        return Batch(
            ts=self.ts[keep], variant=self.variant[keep], bucket=self.bucket[keep],
            has_key=self.has_key[keep], label_delay_s=self.label_delay_s[keep],
            outcomes={k: v[keep] for k, v in self.outcomes.items()},
            rec=index[self.rec[rows]].astype(np.int32), truth=self.truth[rows],
            truth_value=self.truth_value[rows], inputs=self.inputs[rows],
            models={k: ModelColumns(m.status[keep], m.role[keep], m.latency_ms[keep],
                                    m.pred[rows], m.scores[rows], m.value[rows])
                    for k, m in self.models.items()},
            keys=None if self.keys is None else [
                k for k, kept in zip(self.keys, keep, strict=True) if kept])

    @property
    def records(self) -> int:
        return int(self.ts.shape[0])

    @property
    def rows(self) -> int:
        return int(self.rec.shape[0])


def empty_model(records: int, rows: int, classes: int) -> ModelColumns:
    """Columns for a model first seen in this batch: absent everywhere."""
    return ModelColumns(
        status=np.zeros(records, np.int8), role=np.zeros(records, np.int8),
        latency_ms=np.full(records, np.nan, np.float32), pred=np.full(rows, -1, np.int16),
        scores=np.full((rows, classes), np.nan, np.float32),
        value=np.full(rows, np.nan, np.float64))
