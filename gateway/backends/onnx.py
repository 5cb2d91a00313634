"""ONNX Runtime backend: signature from the file, hash check against the card, warm-up.

Tiny models (tens of microseconds) are called inline on the event loop: handing them to
a thread costs more than the inference. At warm-up the backend measures itself and moves
request-path calls to a worker thread when a call is slower than ``INLINE_LIMIT_S``.

Shadow micro-batches run where ``place_shadows`` says (the config's ``mirror.isolation``):
``inline`` on the event loop, ``thread`` on a dedicated thread, ``process`` in the gateway's
shadow process (shadowproc.py), or ``auto``: inline while a batch is cheap (a warm-up batch
of ``WARMUP_BATCH`` rows, then every batch, within ``SHADOW_INLINE_LIMIT_S`` of CPU), else
the shadow process (a thread when there is none). Each batch reports the CPU time it took
wherever it ran, which the shadow CPU budget is charged.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort

from gateway.backends.base import CallContext
from gateway.backends.card import CARD_FILE, ModelCard, load_card, sha256_of
from gateway.backends.shadowproc import ShadowProcess
from gateway.errors import ConfigError
from gateway.protocol.signature import ClassifierInfo, Signature, TensorSpec, same_specs
from gateway.protocol.tensors import DTYPES, Array

log = logging.getLogger(__name__)

INLINE_LIMIT_S = 0.001
# A shadow micro-batch runs inline while it stays this fast; SHADOW_SLOW_STREAK slower
# calls in a row move the model's shadow batches to a worker thread for good (threads cost
# GIL hand-offs that stretch the champion's p99 many times over, so they are only worth it
# for slow models). Calls are timed in CPU time of the loop's thread: on a busy machine a
# preempted call takes milliseconds of wall time, and that must not count as slow.
SHADOW_INLINE_LIMIT_S = 0.002
SHADOW_SLOW_STREAK = 3
WARMUP_BATCH = 64
Offload = Literal["auto", "always", "never"]
Isolation = Literal["auto", "inline", "thread", "process"]
ShadowMode = Literal["inline", "thread", "process"]

ORT_TYPES = {
    "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64", "tensor(int8)": "INT8",
    "tensor(int16)": "INT16", "tensor(int32)": "INT32", "tensor(int64)": "INT64",
    "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def _spec(arg: Any, path: Path) -> TensorSpec:
    datatype = ORT_TYPES.get(arg.type)
    if datatype is None:
        raise ConfigError([f"{path}: tensor {arg.name!r} has unsupported type {arg.type}"])
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
    return TensorSpec(arg.name, datatype, shape)


def _check_card(card: ModelCard, onnx_path: Path, signature: Signature) -> list[str]:
    errors = []
    digest = sha256_of(onnx_path)
    if card.sha256 and card.sha256 != digest:
        errors.append(f"{onnx_path}: sha256 {digest} does not match {card.path} "
                      f"({card.sha256}); the file changed or the card is stale")
    for kind, declared, actual in (("inputs", card.inputs, signature.inputs),
                                   ("outputs", card.outputs, signature.outputs)):
        if declared is not None and not same_specs(declared, actual):
            errors.append(f"{card.path}: {kind} {[s.as_json() for s in declared]} do not "
                          f"match the ONNX file's {[s.as_json() for s in actual]}")
    return errors


def session_runner(session: Any) -> Callable[[list[str], dict[str, Array], None], list[Any]]:
    """``run(output_names, feed, run_options)`` of the C++ session below onnxruntime's Python
    wrapper, or the wrapper's own when it has none. The wrapper's ``run`` checks the feed's
    names and falls back between execution providers; here the names are checked against the
    signature before any call and the CPU provider has nothing to fall back to: 2 us of a
    10 us call for the bundled champion."""
    run: Callable[[list[str], dict[str, Array], None], list[Any]] = getattr(
        session, "_sess", session).run
    return run


class OnnxBackend:
    """One ONNX model version served by onnxruntime."""

    platform = "onnxruntime_onnx"

    def __init__(self, name: str, version: str, directory: Path, *, threads: int = 1,
                 offload: Offload = "auto", allow_nonfinite: bool = False) -> None:
        self.name = name
        self.version = version
        self.directory = directory
        self.path = directory / "model.onnx"
        if not self.path.is_file():
            raise ConfigError([f"{self.path}: model file not found"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ConfigError([f"{self.path}: cannot load ONNX model: {exc}"]) from None
        self.signature = Signature(
            inputs=tuple(_spec(a, self.path) for a in self.session.get_inputs()),
            outputs=tuple(_spec(a, self.path) for a in self.session.get_outputs()),
            allow_nonfinite=allow_nonfinite,
        )
        self.card: ModelCard | None = None
        card_path = directory / CARD_FILE
        if card_path.is_file():
            self.card = load_card(card_path)
            errors = _check_card(self.card, self.path, self.signature)
            if errors:
                raise ConfigError(errors)
        self.classifier: ClassifierInfo | None = self.card.classifier if self.card else None
        if self.classifier and not {self.classifier.label_output,
                                    self.classifier.scores_output} <= self.signature.output_names:
            raise ConfigError([f"{card_path}: label/scores outputs not in the model's outputs"])
        self._output_names = [s.name for s in self.signature.outputs]
        self._session_run = session_runner(self.session)
        self._offload = offload
        self.threads = threads
        self.inline = offload != "always"
        self._shadow_cheap = False  # decided at warm-up: may shadow batches run inline?
        self.shadow_mode: ShadowMode = "thread"  # decided at warm-up, then by place_shadows
        self._isolation: Isolation = "auto"
        self._process: ShadowProcess | None = None
        self._slow_streak = 0
        self.warmup_s: float | None = None
        self.warmup_batch_s: float | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._shadow_executor: ThreadPoolExecutor | None = None

    def run(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        """Synchronous model call."""
        return dict(zip(self._output_names,
                        self._session_run(self._output_names, dict(inputs), None), strict=True))

    def warmup(self, calls: int = 20) -> None:
        """Run dummy inputs; decide inline vs. thread from the measured median."""
        sample = {s.name: _dummy(s) for s in self.signature.inputs}
        timings = []
        try:
            for _ in range(calls):
                start = time.perf_counter()
                self.run(sample)
                timings.append(time.perf_counter() - start)
        except Exception as exc:
            raise ConfigError([f"{self.path}: warm-up inference failed: {exc}"]) from None
        self.warmup_s = statistics.median(timings)
        if self._offload == "auto":
            self.inline = self.warmup_s < INLINE_LIMIT_S
        self.warmup_batch_s = self._time_batch(sample) if self.signature.batchable else None
        cheap = self.warmup_batch_s is None or self.warmup_batch_s <= SHADOW_INLINE_LIMIT_S
        self._shadow_cheap = self.inline and self._offload != "always" and cheap
        self.place_shadows(self._isolation, self._process)
        log.info("model %s:%s warmed up: %.0f us per call, %s; %s-row shadow batch %s us, %s",
                 self.name, self.version, self.warmup_s * 1e6,
                 "inline" if self.inline else "worker thread", WARMUP_BATCH,
                 "-" if self.warmup_batch_s is None else f"{self.warmup_batch_s * 1e6:.0f}",
                 self.shadow_mode)

    def _time_batch(self, sample: dict[str, Array]) -> float:
        """CPU seconds of one WARMUP_BATCH-row call (median of 3)."""
        rows = {name: np.repeat(array, WARMUP_BATCH, axis=0) if array.ndim else array
                for name, array in sample.items()}
        timings = []
        for _ in range(3):
            start = time.thread_time()
            self.run(rows)
            timings.append(time.thread_time() - start)
        return statistics.median(timings)

    @property
    def shadow_inline(self) -> bool:
        """Whether shadow batches run on the event loop now."""
        return self.shadow_mode == "inline"

    def place_shadows(self, isolation: Isolation, process: ShadowProcess | None) -> None:
        """Where this model's shadow micro-batches run from now on (``mirror.isolation``);
        ``process``: the gateway's shadow process, for ``process`` and ``auto``."""
        self._isolation, self._process = isolation, process
        if isolation == "auto":
            self._slow_streak = 0
            self.shadow_mode = "inline" if self._shadow_cheap else self._offloaded()
        elif isolation == "process" and process is None:
            self.shadow_mode = "thread"
        else:
            self.shadow_mode = isolation

    def _offloaded(self) -> ShadowMode:
        return "process" if self._process is not None else "thread"

    async def infer(self, inputs: Mapping[str, Array], context: CallContext | None = None
                    ) -> dict[str, Array]:
        if self.inline:
            return self.run(inputs)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"ort-{self.name}")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.run, inputs)

    async def infer_batch(self, inputs: Mapping[str, Array], context: CallContext | None = None
                          ) -> dict[str, Array]:
        return (await self.infer_batch_metered(inputs, context))[0]

    async def infer_batch_metered(self, inputs: Mapping[str, Array],
                                  context: CallContext | None = None
                                  ) -> tuple[dict[str, Array], float]:
        """A shadow micro-batch, and the CPU seconds it took where it ran."""
        if self.shadow_mode == "process" and self._process is not None:
            outputs, cpu_s = await self._process.run(str(self.path), self.threads,
                                                     self._output_names, inputs)
            return dict(zip(self._output_names, outputs, strict=True)), cpu_s
        if self.shadow_mode == "inline":
            start = time.thread_time()
            result = self.run(inputs)
            took = time.thread_time() - start
            if took <= SHADOW_INLINE_LIMIT_S or self._isolation != "auto":
                self._slow_streak = 0
                return result, took
            self._slow_streak += 1
            if self._slow_streak >= SHADOW_SLOW_STREAK:
                self.shadow_mode = self._offloaded()
                log.warning("model %s:%s took %.1f ms of CPU on %d shadow batches in a row: "
                            "later batches run in the shadow %s", self.name, self.version,
                            took * 1000, self._slow_streak, self.shadow_mode)
            return result, took
        if self._shadow_executor is None:
            self._shadow_executor = ThreadPoolExecutor(1, thread_name_prefix=f"shadow-{self.name}")
        return await asyncio.get_running_loop().run_in_executor(
            self._shadow_executor, self._run_timed, inputs)

    def _run_timed(self, inputs: Mapping[str, Array]) -> tuple[dict[str, Array], float]:
        start = time.thread_time()
        result = self.run(inputs)
        return result, time.thread_time() - start

    async def close(self) -> None:
        for executor in (self._executor, self._shadow_executor):
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)


def _dummy(spec: TensorSpec) -> Array:
    shape = tuple(1 if d < 0 else d for d in spec.shape)
    if spec.datatype == "BYTES":
        return np.full(shape, "", dtype=object)
    return np.zeros(shape, dtype=DTYPES[spec.datatype])
