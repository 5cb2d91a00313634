"""Custom Python backends for tests (``python: "tests.backends:sleepy"`` in a config)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

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

    async def infer(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return self._run(inputs)

    async def infer_batch(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
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
