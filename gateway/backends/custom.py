"""Custom Python backends: ``python: "package.module:factory"`` in the config.

The factory is called as ``factory(name=..., version=..., options=...)`` and must return an
object that satisfies :class:`gateway.backends.base.Backend`.
"""

from __future__ import annotations

import importlib
from typing import Any, cast

from gateway.backends.base import Backend
from gateway.errors import ConfigError


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
    return cast(Backend, backend)
