from __future__ import annotations

import numpy as np

from gateway.backends.onnx import SHADOW_SLOW_STREAK, OnnxBackend
from tests.helpers import MODELS


async def test_fast_shadow_batches_run_inline_until_several_in_a_row_are_slow() -> None:
    backend = OnnxBackend("bc-rf", "1", MODELS / "bc-rf" / "1")
    backend.warmup()
    assert backend.inline and backend.shadow_inline
    small = {"input": np.zeros((4, 30), dtype=np.float32)}
    assert (await backend.infer_batch(small))["label"].shape == (4,)
    assert backend.shadow_inline
    # One slow batch is not enough (a blip), and a fast one resets the streak ...
    huge = {"input": np.random.default_rng(0).random((50_000, 30), dtype=np.float32)}
    for _ in range(SHADOW_SLOW_STREAK - 1):
        await backend.infer_batch(huge)
    assert backend.shadow_inline
    await backend.infer_batch(small)
    for _ in range(SHADOW_SLOW_STREAK - 1):
        await backend.infer_batch(huge)
    assert backend.shadow_inline
    # ... but a streak of batches far slower than the limit moves them to a worker thread.
    await backend.infer_batch(huge)
    assert not backend.shadow_inline
    assert (await backend.infer_batch(small))["label"].shape == (4,)
    await backend.close()


async def test_offload_always_keeps_shadows_off_the_loop() -> None:
    backend = OnnxBackend("bc-rf", "1", MODELS / "bc-rf" / "1", offload="always")
    backend.warmup()
    assert not backend.inline and not backend.shadow_inline
    await backend.close()
