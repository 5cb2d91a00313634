"""A model that takes a big tensor and gives a small answer, for loadtests/bigtensor.py.

``python: "loadtests.bigmodel:mean"`` in a config (the gateway runs from the repository
root, where ``loadtests`` imports as a namespace package): FP32 ``[-1, width]`` in, the mean
of each row out (FP32 ``[-1]``), so that a request's cost is its wire format, not the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gateway.protocol.signature import Signature, TensorSpec


class Mean:
    platform = "python"
    classifier = None

    def __init__(self, name: str, version: str, options: dict[str, Any]) -> None:
        self.name, self.version = name, version
        width = int(options.get("width", 262_144))  # 1 MiB of FP32 per row
        self.signature = Signature((TensorSpec("x", "FP32", (-1, width)),),
                                   (TensorSpec("y", "FP32", (-1,)),))

    async def infer(self, inputs: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        return {"y": np.mean(inputs["x"], axis=1, dtype=np.float32)}

    async def infer_batch(self, inputs: Mapping[str, Any], context: Any = None
                          ) -> dict[str, Any]:
        return await self.infer(inputs)

    async def close(self) -> None:
        return None


def mean(name: str, version: str, options: dict[str, Any]) -> Mean:
    return Mean(name, version, options)
