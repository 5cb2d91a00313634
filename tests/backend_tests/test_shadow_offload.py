from __future__ import annotations

import numpy as np

from gateway.backends.onnx import OnnxBackend
from tests.helpers import MODELS


async def test_fast_shadow_batches_run_inline_until_one_is_slow() -> None:
    backend = OnnxBackend("bc-rf", "1", MODELS / "bc-rf" / "1")
    backend.warmup()
    assert backend.inline and backend.shadow_inline
    small = {"input": np.zeros((4, 30), dtype=np.float32)}
    assert (await backend.infer_batch(small))["label"].shape == (4,)
    assert backend.shadow_inline
    # A batch far slower than the inline limit moves later batches to a worker thread.
    huge = {"input": np.random.default_rng(0).random((200_000, 30), dtype=np.float32)}
    await backend.infer_batch(huge)
    assert not backend.shadow_inline
    assert (await backend.infer_batch(small))["label"].shape == (4,)
    await backend.close()


async def test_offload_always_keeps_shadows_off_the_loop() -> None:
    backend = OnnxBackend("bc-rf", "1", MODELS / "bc-rf" / "1", offload="always")
    backend.warmup()
    assert not backend.inline and not backend.shadow_inline
    await backend.close()
