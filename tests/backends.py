"""Custom Python backends for tests (``python: "tests.backends:sleepy"`` in a config)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from gateway.protocol.signature import ClassifierInfo, Signature, TensorSpec

SIGNATURE = Signature(
    inputs=(TensorSpec("input", "FP32", (-1, 30)),),
    outputs=(TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 2))),
)
CLASSIFIER = ClassifierInfo(("malignant", "benign"), "label", "probabilities")


class Fake:
    """Answers benign with p=0.5; ``delay`` seconds of blocking sleep, or ``fail`` to raise;
    ``width``: features per row it takes (30, as the bundled models, by default)."""

    platform = "python"

    def __init__(self, name: str, version: str, options: dict[str, Any]) -> None:
        self.name = name
        self.version = version
        self.options = options
        width = int(options.get("width", 30))
        self.signature = SIGNATURE if width == 30 else Signature(
            (TensorSpec("input", "FP32", (-1, width)),), SIGNATURE.outputs)
        self.classifier = CLASSIFIER
        self.delay = float(options.get("delay", 0))
        self.fail = bool(options.get("fail", False))
        self.calls = 0
        self.release = threading.Event()

    def _run(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)  # a model that is slow in its own thread
        if self.fail:
            raise RuntimeError("this shadow always fails")
        rows = inputs["input"].shape[0]
        return {"label": np.ones(rows, dtype=np.int64),
                "probabilities": np.full((rows, 2), 0.5, dtype=np.float32)}

    async def infer(self, inputs: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        return self._run(inputs)

    async def infer_batch(self, inputs: Mapping[str, Any], context: Any = None
                          ) -> dict[str, Any]:
        return await asyncio.to_thread(self._run, inputs)

    async def close(self) -> None:
        return None


def fake(name: str, version: str, options: dict[str, Any]) -> Fake:
    return Fake(name, version, options)


class SocketGated(Fake):
    """Each request connects to 127.0.0.1:``options["port"]`` and waits for one byte before
    answering: a test (even in another process) sees the request arrive by accepting the
    connection, and releases it by writing a byte."""

    async def infer(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(self.options["port"]))
        try:
            await reader.read(1)
        finally:
            writer.close()
        return self._run(inputs)


def socket_gated(name: str, version: str, options: dict[str, Any]) -> SocketGated:
    return SocketGated(name, version, options)


class Timer:
    """A monotonic clock for tests that only moves when a model says it worked: latencies
    then depend on what the models cost, not on how busy the machine is."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


TIMER = Timer()


class Variant:
    """The bundled champion's ONNX model, altered by ``mode``: "copy" (the same answers),
    "flip" (``share`` of the labels flipped, chosen by a hash of the row, so a row is always
    treated the same), "better" (the champion's mistakes on the bundled held-out rows
    corrected), "fail" (``share`` of the calls raise, drawn from a seeded generator) or
    "slow" (each call takes twice as long: the model, then as long again busy)."""

    platform = "python"

    def __init__(self, name: str, version: str, options: dict[str, Any]) -> None:
        from gateway.backends.onnx import OnnxBackend
        from tests.helpers import HOLDOUT, MODELS

        self.name, self.version = name, version
        self.mode = str(options.get("mode", "copy"))
        self.share = float(options.get("share", 0.1))
        self.model = OnnxBackend("bc-logreg", "1", MODELS / "bc-logreg" / "1")
        self.signature = self.model.signature
        self.classifier = self.model.classifier
        self.rng = np.random.default_rng(int(options.get("seed", 0)))
        self.cost_s = float(options.get("cost_ms", 0)) / 1000  # on TIMER, per call
        rows = [orjson.loads(line) for line in HOLDOUT.read_bytes().splitlines() if line]
        self.truth = {np.asarray(r["features"], np.float32).tobytes(): int(r["label"])
                      for r in rows}

    def _run(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        start = time.perf_counter()
        TIMER.advance(self.cost_s * (2 if self.mode == "slow" else 1))
        out = self.model.run(inputs)
        if self.mode == "copy":
            return out
        if self.mode == "slow":
            took = time.perf_counter() - start
            while not self.cost_s and time.perf_counter() - start < 2 * took:
                pass  # on the real clock: twice as long (on TIMER it costs twice)
            return out
        if self.mode == "fail":
            if self.rng.random() < self.share:
                raise RuntimeError("this candidate fails some calls")
            return out
        labels, probs = out["label"].copy(), out["probabilities"].copy()
        for i, row in enumerate(inputs["input"]):
            key = np.asarray(row, np.float32).tobytes()
            if self.mode == "flip":
                if int.from_bytes(hashlib.blake2b(key, digest_size=4).digest()) % 1000 \
                        < self.share * 1000:
                    labels[i], probs[i] = 1 - labels[i], probs[i][::-1]
            elif self.mode == "better" and key in self.truth and labels[i] != self.truth[key]:
                labels[i] = self.truth[key]
                probs[i] = [0.1, 0.9] if labels[i] == 1 else [0.9, 0.1]
        return {"label": labels, "probabilities": probs}

    async def infer(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return self._run(inputs)

    async def infer_batch(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return self._run(inputs)

    async def close(self) -> None:
        return None


def variant(name: str, version: str, options: dict[str, Any]) -> Variant:
    return Variant(name, version, options)
