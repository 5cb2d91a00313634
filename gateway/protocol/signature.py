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
    """A model's inputs and outputs, in model order.

    A part that could not be learned (a remote server whose metadata lists no inputs or
    outputs, as MLServer's does unless its settings declare them) is *unknown*, not empty:
    ``inputs_known=False`` passes every request through unchecked (the model's own
    validation applies) and never concatenates requests; ``outputs_known=False`` means the
    output names are known only from an answer."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    allow_nonfinite: bool = False
    inputs_known: bool = True
    outputs_known: bool = True
    input_names: frozenset[str] = field(init=False)
    output_names: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_names", frozenset(s.name for s in self.inputs))
        object.__setattr__(self, "output_names", frozenset(s.name for s in self.outputs))

    @classmethod
    def unknown(cls) -> Signature:
        """Nothing known: inputs pass through unchecked, outputs are whatever comes back."""
        return cls((), (), inputs_known=False, outputs_known=False)

    @property
    def unknown_parts(self) -> tuple[str, ...]:
        """``("inputs", "outputs")``, one of them or neither."""
        return tuple(part for part, known in (("inputs", self.inputs_known),
                                              ("outputs", self.outputs_known)) if not known)

    @property
    def batchable(self) -> bool:
        """True when every input has a dynamic first dimension (rows can be concatenated);
        never for unknown inputs."""
        return self.inputs_known and all(s.shape and s.shape[0] == -1 for s in self.inputs)

    def validate(self, inputs: Mapping[str, Array], model: str, finite: bool = False) -> None:
        """Raise InvalidInput naming the input, what the model expects and what came.

        ``finite``: the caller knows the float inputs hold no NaN or infinity (decoded
        from JSON), so the per-element check is skipped. Unknown inputs: no check."""
        if not self.inputs_known:
            return
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


def same_specs(declared: tuple[TensorSpec, ...], actual: tuple[TensorSpec, ...],
               trailing_one: bool = False) -> bool:
    """Same names, datatypes and ranks; dimensions equal where neither side is dynamic.

    ``trailing_one``: a shape may also have one more or one less trailing dimension of
    size 1 (``[-1]`` and ``[-1, 1]``; answers are reshaped with ``fit_shape``)."""
    have = {s.name: s for s in actual}
    if {s.name for s in declared} != have.keys():
        return False
    for spec in declared:
        other = have[spec.name]
        a, b = spec.shape, other.shape
        if trailing_one and len(a) == len(b) + 1 and a[-1] == 1:
            a = a[:-1]
        elif trailing_one and len(b) == len(a) + 1 and b[-1] == 1:
            b = b[:-1]
        if spec.datatype != other.datatype or len(a) != len(b):
            return False
        if any(x != y and x != -1 and y != -1 for x, y in zip(a, b, strict=True)):
            return False
    return True


def fit_shape(array: Array, spec: TensorSpec) -> Array:
    """``array`` reshaped to ``spec``'s rank where the two differ only by a trailing 1
    (``[n, 1]`` for ``[-1]``, or ``[n]`` for ``[-1, 1]``); otherwise unchanged."""
    rank = len(spec.shape)
    if array.ndim == rank + 1 and array.shape[-1] == 1:
        return array.reshape(array.shape[:-1])
    if array.ndim + 1 == rank and spec.shape[-1] == 1:
        return array.reshape((*array.shape, 1))
    return array


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
