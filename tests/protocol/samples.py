"""Tensors that reach each datatype's edges, and assertions shared by the wire-format tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest

from gateway.protocol.tensors import DTYPES, Array


@contextlib.contextmanager
def raises(exc: type[Exception], *words: str) -> Iterator[None]:
    """pytest.raises plus: the message contains every word."""
    with pytest.raises(exc) as info:
        yield
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def sample(datatype: str) -> Array:
    """A [2, 3] tensor of ``datatype`` that reaches the type's edges."""
    if datatype == "BYTES":
        return np.array([["", "a", "héllo"], ["x" * 300, "\x00nul", "ü"]], dtype=object)
    if datatype == "BOOL":
        return np.array([[True, False, True], [False, False, True]])
    dtype = DTYPES[datatype]
    if dtype.kind == "f":
        info = np.finfo(dtype)
        return np.array([[info.min, -0.0, info.max], [np.nan, np.inf, 1.5]], dtype=dtype)
    iinfo = np.iinfo(dtype)
    return np.array([[iinfo.min, 0, iinfo.max], [1, 2, iinfo.max - 1]], dtype=dtype)


def same(a: Array, b: Array) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and bool(
        np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
