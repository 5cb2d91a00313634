"""OnnxBackend (signature, warm-up, inline vs. thread) and Signature.validate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from gateway.backends.onnx import INLINE_LIMIT_S, OnnxBackend, session_runner
from gateway.errors import InvalidInput
from gateway.protocol.signature import Signature, TensorSpec
from tests.helpers import MODEL_NAMES, MODELS

ROWS = np.random.default_rng(7).normal(10, 3, size=(9, 30)).astype(np.float32)


def directory(name: str) -> Path:
    return MODELS / name / "1"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_signature_and_card(name: str) -> None:
    backend = OnnxBackend(name, "1", directory(name))
    sig = backend.signature
    assert sig.inputs == (TensorSpec("input", "FP32", (-1, 30)),)
    assert sig.outputs == (TensorSpec("label", "INT64", (-1,)),
                           TensorSpec("probabilities", "FP32", (-1, 2)))
    assert sig.batchable
    assert backend.classifier is not None
    assert backend.classifier.class_labels == ("malignant", "benign")
    assert len(backend.classifier.features) == 30
    assert backend.platform == "onnxruntime_onnx"


@pytest.mark.parametrize("offload", ["auto", "always", "never"])
async def test_infer_matches_onnxruntime(offload: str) -> None:
    backend = OnnxBackend("bc-gbt", "1", directory("bc-gbt"), offload=offload)  # type: ignore[arg-type]
    backend.warmup(calls=3)
    assert backend.warmup_s is not None and backend.warmup_s > 0
    assert backend.inline is {"always": False, "never": True}.get(offload, backend.inline)
    session = ort.InferenceSession(str(directory("bc-gbt") / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    want = session.run(None, {"input": ROWS})
    try:
        for call in (backend.infer, backend.infer_batch):
            got = await call({"input": ROWS})
            assert list(got) == ["label", "probabilities"]
            np.testing.assert_array_equal(got["label"], want[0])
            np.testing.assert_array_equal(got["probabilities"], want[1])
    finally:
        await backend.close()


def test_the_session_is_called_below_the_python_wrapper() -> None:
    backend = OnnxBackend("bc-logreg", "1", directory("bc-logreg"))
    assert backend._session_run == backend.session._sess.run
    want = backend.session.run(None, {"input": ROWS})
    np.testing.assert_array_equal(backend.run({"input": ROWS})["probabilities"], want[1])
    # an onnxruntime without ``_sess``: the wrapper's own run
    wrapper = type("Wrapper", (), {"run": backend.session.run})()
    got = session_runner(wrapper)(["label"], {"input": ROWS}, None)
    np.testing.assert_array_equal(got[0], want[0])


async def test_offload_always_uses_a_worker_thread_never_does_not() -> None:
    always = OnnxBackend("bc-logreg", "1", directory("bc-logreg"), offload="always")
    never = OnnxBackend("bc-logreg", "1", directory("bc-logreg"), offload="never")
    try:
        await always.infer({"input": ROWS})
        await never.infer({"input": ROWS})
        assert always._executor is not None
        assert never._executor is None
        # Shadow micro-batches always leave the loop, whatever the request path does.
        await never.infer_batch({"input": ROWS})
        assert never._shadow_executor is not None
    finally:
        await always.close()
        await never.close()


def test_warmup_decides_inline_from_the_median() -> None:
    backend = OnnxBackend("bc-logreg", "1", directory("bc-logreg"))
    backend.warmup(calls=5)
    assert backend.warmup_s is not None
    assert backend.inline == (backend.warmup_s < INLINE_LIMIT_S)


# -- Signature.validate ------------------------------------------------------------------------

SIG = Signature(inputs=(TensorSpec("x", "FP32", (-1, 3)), TensorSpec("mask", "BOOL", (-1,))),
                outputs=(TensorSpec("y", "FP32", (-1,)),))


def good(rows: int = 2) -> dict[str, np.ndarray]:
    return {"x": np.zeros((rows, 3), np.float32), "mask": np.ones(rows, bool)}


def message(inputs: dict[str, np.ndarray], sig: Signature = SIG) -> str:
    with pytest.raises(InvalidInput) as info:
        sig.validate(inputs, "m")
    return str(info.value)


def test_validate_accepts_matching_inputs() -> None:
    SIG.validate(good(), "m")
    SIG.validate(good(0), "m")  # zero rows is the service's business, not the signature's


def test_validate_names_missing_and_unknown_inputs() -> None:
    msg = message({"x": good()["x"], "extra": np.zeros(2)})
    assert "missing input(s) ['mask']" in msg and "unknown input(s) ['extra']" in msg
    assert "model 'm' takes ['mask', 'x']" in msg


def test_validate_datatype() -> None:
    msg = message({**good(), "x": np.zeros((2, 3), np.float64)})
    assert msg == "inputs.x.datatype: model 'm' expects FP32, got FP64"


@pytest.mark.parametrize(("shape", "got"), [((2,), "[2]"), ((2, 4), "[2, 4]"),
                                            ((2, 3, 1), "[2, 3, 1]")])
def test_validate_shape(shape: tuple[int, ...], got: str) -> None:
    msg = message({**good(), "x": np.zeros(shape, np.float32)})
    assert "inputs.x.shape" in msg and "[-1, 3]" in msg and got in msg


def test_validate_rows_agree_across_inputs() -> None:
    msg = message({"x": np.zeros((2, 3), np.float32), "mask": np.ones(3, bool)})
    assert "first dimension 3" in msg and "2" in msg


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_validate_refuses_non_finite(bad: float) -> None:
    x = np.zeros((2, 3), np.float32)
    x[1, 2] = bad
    msg = message({**good(), "x": x})
    assert "inputs.x.data" in msg and "NaN or infinite" in msg and "flat index 5" in msg
    allowing = Signature(SIG.inputs, SIG.outputs, allow_nonfinite=True)
    allowing.validate({**good(), "x": x}, "m")
