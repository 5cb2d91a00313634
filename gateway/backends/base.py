"""What every backend offers: a signature, an async infer, and a batched infer for shadows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from gateway.protocol.signature import ClassifierInfo, Signature
from gateway.protocol.tensors import Array


class Backend(Protocol):
    """A model the gateway can call, local or remote."""

    name: str
    version: str
    signature: Signature
    platform: str
    classifier: ClassifierInfo | None

    async def infer(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        """Answer one request on the request path (inline or off-loop, as the backend chose)."""
        ...

    async def infer_batch(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        """Answer a concatenated micro-batch for shadows; must never block the event loop."""
        ...

    async def close(self) -> None: ...
