"""A model's signature: its inputs and outputs, and how to read a classifier's answer.

These are protocol facts (names, V2 datatypes, shapes), shared by every backend and by the
decoders that check a request against the model it is for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gateway.errors import InvalidInput
from gateway.protocol.tensors import FLOAT_TYPES, Array, datatype_of


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output: name, V2 datatype, shape with -1 for dynamic dimensions."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Signature:
    """A model's inputs and outputs, in model order."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    allow_nonfinite: bool = False
    input_names: frozenset[str] = field(init=False)
    output_names: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_names", frozenset(s.name for s in self.inputs))
        object.__setattr__(self, "output_names", frozenset(s.name for s in self.outputs))

    @property
    def batchable(self) -> bool:
        """True when every input has a dynamic first dimension (rows can be concatenated)."""
        return all(s.shape and s.shape[0] == -1 for s in self.inputs)

    def validate(self, inputs: Mapping[str, Array], model: str, finite: bool = False) -> None:
        """Raise InvalidInput naming the input, what the model expects and what came.

        ``finite``: the caller knows the float inputs hold no NaN or infinity (decoded
        from JSON), so the per-element check is skipped."""
        if inputs.keys() != self.input_names:
            missing = sorted(self.input_names - inputs.keys())
            unknown = sorted(inputs.keys() - self.input_names)
            parts = []
            if missing:
                parts.append(f"missing input(s) {missing}")
            if unknown:
                parts.append(f"unknown input(s) {unknown}")
            raise InvalidInput(f"inputs: {' and '.join(parts)}; model {model!r} takes "
                               f"{sorted(self.input_names)}")
        rows = None
        for spec in self.inputs:
            array = inputs[spec.name]
            got = datatype_of(array)
            if got != spec.datatype:
                raise InvalidInput(f"inputs.{spec.name}.datatype: model {model!r} expects "
                                   f"{spec.datatype}, got {got}")
            if len(array.shape) != len(spec.shape) or any(
                    want not in (-1, have) for want, have in zip(spec.shape, array.shape,
                                                               strict=True)):
                raise InvalidInput(f"inputs.{spec.name}.shape: model {model!r} expects "
                                   f"{list(spec.shape)} (-1 = any), got {list(array.shape)}")
            if spec.shape and spec.shape[0] == -1 and array.ndim:
                if rows is not None and array.shape[0] != rows:
                    raise InvalidInput(f"inputs.{spec.name}.shape: first dimension "
                                       f"{array.shape[0]} differs from other inputs' {rows}")
                rows = array.shape[0]
            if (not finite and not self.allow_nonfinite and spec.datatype in FLOAT_TYPES
                    and not np.isfinite(array).all()):
                raise InvalidInput(f"inputs.{spec.name}.data: model {model!r} cannot take "
                                   f"NaN or infinite values, got {_first_nonfinite(array)}")


def _first_nonfinite(array: Array) -> str:
    flat = array.ravel()
    index = int(np.flatnonzero(~np.isfinite(flat))[0])
    return f"{flat[index]} at flat index {index}"


@dataclass(frozen=True)
class ClassifierInfo:
    """From a model card: how to read a classifier's outputs and its features."""

    class_labels: tuple[str, ...]
    label_output: str
    scores_output: str
    features: tuple[str, ...] = ()
