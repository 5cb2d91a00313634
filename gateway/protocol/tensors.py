"""Tensors and inference requests/responses, independent of any wire format.

V2 datatypes map to numpy dtypes; ``BYTES`` tensors are numpy object arrays of str/bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]

DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
DATATYPE_OF: dict[np.dtype[Any], str] = {v: k for k, v in DTYPES.items()}
FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64"})

Array = npt.NDArray[Any]


def datatype_of(array: Array) -> str:
    """The V2 datatype of a numpy array (str and bytes arrays are BYTES)."""
    dt = DATATYPE_OF.get(array.dtype)
    if dt is not None:
        return dt
    if array.dtype.kind in "OSU":
        return "BYTES"
    raise TypeError(f"numpy dtype {array.dtype} has no V2 datatype")


@dataclass(slots=True)
class InferenceRequest:
    """Decoded inputs plus the optional V2 ``id``, ``parameters`` and requested ``outputs``."""

    inputs: dict[str, Array]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[str] | None = None
    datatypes: dict[str, str] = field(default_factory=dict)
    finite: bool = False  # decoded from JSON: no NaN or infinity in any float input

    @property
    def rows(self) -> int:
        """Size of the first dimension of the first input (1 for scalars)."""
        for array in self.inputs.values():
            return int(array.shape[0]) if array.ndim else 1
        return 0


@dataclass(slots=True)
class InferenceResponse:
    """What the answering model said, plus which model that was."""

    model_name: str
    model_version: str
    outputs: dict[str, Array]
    id: str | None = None
    parameters: dict[str, Any] | None = None
