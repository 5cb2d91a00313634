"""What every backend offers: a signature, an async infer, and a batched infer for shadows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from gateway.protocol.signature import ClassifierInfo, Signature
from gateway.protocol.tensors import Array


@dataclass(slots=True)
class CallContext:
    """Whom a model call is for, so that a remote server's logs can be joined with the
    paired record: the gateway's request id and the caller's V2 ``id``; for a micro-batch
    of several requests concatenated into one call, every request id (``request_id`` is
    then the first's, ``v2_id`` None)."""

    request_id: str
    v2_id: str | None = None
    batch_ids: tuple[str, ...] = ()


class Backend(Protocol):
    """A model the gateway can call, local or remote.

    ``context`` tells whom the call is for; local backends ignore it, remote ones send it on.
    """

    name: str
    version: str
    signature: Signature
    platform: str
    classifier: ClassifierInfo | None

    async def infer(self, inputs: Mapping[str, Array], context: CallContext | None = None
                    ) -> dict[str, Array]:
        """Answer one request on the request path (inline or off-loop, as the backend chose)."""
        ...

    async def infer_batch(self, inputs: Mapping[str, Array], context: CallContext | None = None
                          ) -> dict[str, Array]:
        """Answer a concatenated micro-batch for shadows; must never block the event loop."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class MeteredBackend(Protocol):
    """A backend that says what each shadow batch cost in CPU time, wherever it ran (local
    models: the shadow CPU budget is charged with it)."""

    async def infer_batch_metered(self, inputs: Mapping[str, Array],
                                  context: CallContext | None = None
                                  ) -> tuple[dict[str, Array], float]:
        """``infer_batch``, and the CPU seconds the call took."""
        ...
