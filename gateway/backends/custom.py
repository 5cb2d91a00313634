"""Custom Python backends: ``python: "package.module:factory"`` in the config.

The factory is called as ``factory(name=..., version=..., options=...)`` and must return an
object that satisfies :class:`gateway.backends.base.Backend`. One whose ``infer`` and
``infer_batch`` take no ``context`` keyword (written before it existed) is wrapped in an
adapter that drops it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any, cast

from gateway.backends.base import Backend, CallContext
from gateway.errors import ConfigError
from gateway.protocol.tensors import Array


def load_custom(target: str, name: str, version: str, options: dict[str, Any]) -> Backend:
    module_name, _, attr = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError([f"models {name}:{version}: cannot import {target!r}: {exc}"]) from None
    try:
        backend = factory(name=name, version=version, options=options)
    except Exception as exc:  # user code; report it as a config problem
        raise ConfigError([f"models {name}:{version}: {target} failed: {exc!r}"]) from None
    for needed in ("signature", "infer", "infer_batch", "close"):
        if not hasattr(backend, needed):
            raise ConfigError([f"models {name}:{version}: {target} returned an object "
                               f"without {needed!r}"])
    if not all(_takes_context(getattr(backend, m)) for m in ("infer", "infer_batch")):
        return cast(Backend, ContextFree(backend))
    return cast(Backend, backend)


def _takes_context(method: Any) -> bool:
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "context" or p.kind is p.VAR_KEYWORD for p in params)


class ContextFree:
    """A custom backend whose calls take no ``context``; every other attribute is its own."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    async def infer(self, inputs: Mapping[str, Array], context: CallContext | None = None
                    ) -> dict[str, Array]:
        return cast(dict[str, Array], await self.backend.infer(inputs))

    async def infer_batch(self, inputs: Mapping[str, Array], context: CallContext | None = None
                          ) -> dict[str, Array]:
        return cast(dict[str, Array], await self.backend.infer_batch(inputs))
