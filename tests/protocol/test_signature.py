"""Signatures: unknown parts, shapes that differ by a trailing 1."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.errors import InvalidInput
from gateway.protocol.signature import Signature, TensorSpec, fit_shape, same_specs

X = TensorSpec("x", "FP32", (-1, 3))


def test_unknown_inputs_pass_anything_and_are_never_batched() -> None:
    sig = Signature.unknown()
    assert sig.unknown_parts == ("inputs", "outputs")
    assert not sig.batchable
    sig.validate({"anything": np.array([np.nan], dtype=np.float32)}, "m")
    known = Signature((X,), ())
    assert known.unknown_parts == () and known.batchable
    with pytest.raises(InvalidInput, match="unknown input"):
        known.validate({"anything": np.zeros((1, 3), dtype=np.float32)}, "m")
    outputs_only = Signature((X,), (), outputs_known=False)
    assert outputs_only.unknown_parts == ("outputs",) and outputs_only.batchable


@pytest.mark.parametrize(("shape", "spec", "want"), [
    ((4, 1), (-1,), (4,)),
    ((4,), (-1, 1), (4, 1)),
    ((4,), (-1,), (4,)),
    ((4, 2), (-1,), (4, 2)),  # not a trailing 1: left alone
    ((4, 1), (-1, 1), (4, 1)),
])
def test_fit_shape(shape: tuple[int, ...], spec: tuple[int, ...], want: tuple[int, ...]) -> None:
    array = np.arange(int(np.prod(shape))).reshape(shape)
    got = fit_shape(array, TensorSpec("y", "INT64", spec))
    assert got.shape == want
    assert got.ravel().tolist() == array.ravel().tolist()


def test_same_specs_with_and_without_a_trailing_one() -> None:
    label = (TensorSpec("label", "INT64", (-1,)),)
    column = (TensorSpec("label", "INT64", (-1, 1)),)
    assert same_specs(label, label)
    assert not same_specs(label, column)
    assert same_specs(label, column, trailing_one=True)
    assert same_specs(column, label, trailing_one=True)
    assert not same_specs(label, (TensorSpec("label", "INT64", (-1, -1)),), trailing_one=True)
    assert not same_specs(label, (TensorSpec("label", "FP32", (-1, 1)),), trailing_one=True)
    assert not same_specs(label, (TensorSpec("other", "INT64", (-1,)),), trailing_one=True)
