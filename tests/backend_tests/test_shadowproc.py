"""The shadow process: heavy shadow batches in a child process, answered on the event loop."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from gateway.backends.onnx import OnnxBackend
from gateway.backends.shadowproc import ShadowProcess, ShadowProcessError
from tests.helpers import MODELS

ROWS = np.random.default_rng(3).random((16, 30), dtype=np.float32) * 20


async def test_a_batch_in_the_process_answers_as_inline_and_reports_its_cpu() -> None:
    backend = OnnxBackend("bc-heavy", "1", MODELS / "bc-heavy" / "1")
    backend.warmup()
    process = ShadowProcess(nice=0)
    try:
        backend.place_shadows("process", process)
        assert backend.shadow_mode == "process"
        outputs, cpu_s = await backend.infer_batch_metered({"input": ROWS})
        expected = backend.run({"input": ROWS})
        np.testing.assert_array_equal(outputs["label"], expected["label"])
        np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"])
        assert cpu_s > 0 and process.starts == 1
    finally:
        await process.close()
        await backend.close()


async def test_auto_places_a_heavy_model_in_the_process_and_a_light_one_inline() -> None:
    process = ShadowProcess()
    heavy = OnnxBackend("bc-heavy", "1", MODELS / "bc-heavy" / "1")
    light = OnnxBackend("bc-rf", "1", MODELS / "bc-rf" / "1")
    for backend in (heavy, light):
        backend.warmup()
        backend.place_shadows("auto", process)
    assert heavy.warmup_batch_s is not None and light.warmup_batch_s is not None
    assert heavy.warmup_batch_s > light.warmup_batch_s
    # The warm-up decides by CPU time against a 2 ms limit; these models are far apart.
    assert light.shadow_mode == "inline"
    assert heavy.shadow_mode == ("process" if heavy.warmup_batch_s > 0.002 else "inline")
    heavy.place_shadows("auto", None)  # no process (isolation without one): a thread
    assert heavy.shadow_mode in ("thread", "inline")
    for backend in (heavy, light):
        await backend.close()
    await process.close()


async def test_a_failing_batch_is_an_error_and_the_process_goes_on() -> None:
    process = ShadowProcess(nice=0)
    path = str(MODELS / "bc-rf" / "1" / "model.onnx")
    try:
        with pytest.raises(ShadowProcessError, match="input"):
            await process.run(path, 1, ["label"], {"input": np.zeros((2, 7), np.float32)})
        outputs, _ = await process.run(path, 1, ["label"], {"input": ROWS})
        assert outputs[0].shape == (16,) and process.starts == 1
    finally:
        await process.close()


async def test_a_dead_process_fails_its_batch_and_the_next_one_restarts_it() -> None:
    process = ShadowProcess(nice=0)
    path = str(MODELS / "bc-rf" / "1" / "model.onnx")
    try:
        await process.run(path, 1, ["label"], {"input": ROWS})
        assert process._proc is not None
        os.kill(process._proc.pid, signal.SIGKILL)
        await process._proc.wait()
        assert process._reader is not None
        await process._reader  # the reader has seen the end of the pipe
        assert not process.alive
        outputs, _ = await process.run(path, 1, ["label"], {"input": ROWS})
        assert outputs[0].shape == (16,) and process.starts == 2
    finally:
        await process.close()
    with pytest.raises(ShadowProcessError, match="closed"):
        await process.run(path, 1, ["label"], {"input": ROWS})


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux only")
async def test_the_child_runs_on_idle_cpu_only() -> None:
    process = ShadowProcess(nice=3, idle=True)
    path = str(MODELS / "bc-rf" / "1" / "model.onnx")
    try:
        await process.run(path, 1, ["label"], {"input": ROWS})
        assert process._proc is not None
        assert os.sched_getscheduler(process._proc.pid) == os.SCHED_IDLE
    finally:
        await process.close()
    plain = ShadowProcess(nice=3, idle=False)
    try:
        await plain.run(path, 1, ["label"], {"input": ROWS})
        assert plain._proc is not None
        assert os.sched_getscheduler(plain._proc.pid) == os.SCHED_OTHER
        assert os.getpriority(os.PRIO_PROCESS, plain._proc.pid) == min(
            19, os.getpriority(os.PRIO_PROCESS, 0) + 3)
    finally:
        await plain.close()
