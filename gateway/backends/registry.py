"""The set of loaded models: build every backend of a config, warm it up, look it up."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from gateway.backends.base import Backend
from gateway.backends.custom import load_custom
from gateway.backends.onnx import OnnxBackend
from gateway.backends.remote import RemoteBackend
from gateway.config.load import LoadedConfig
from gateway.errors import ConfigError, NotFound

log = logging.getLogger(__name__)


def _version_key(version: str) -> tuple[int, int | str]:
    return (1, int(version)) if version.isdigit() else (0, version)


@dataclass(frozen=True)
class ModelSet:
    """Immutable: ``name:version`` -> backend, plus the versions of each name."""

    by_ref: dict[str, Backend]
    versions: dict[str, tuple[str, ...]]  # newest last

    def get(self, name: str, version: str | None = None) -> Backend:
        versions = self.versions.get(name)
        if versions is None:
            raise NotFound(f"model {name!r} not found; available: {sorted(self.versions)}")
        if version is None:
            version = versions[-1]
        elif version not in versions:
            raise NotFound(f"model {name!r} has no version {version!r}; available: "
                           f"{list(versions)}")
        return self.by_ref[f"{name}:{version}"]

    def __iter__(self) -> Iterator[Backend]:
        return iter(self.by_ref.values())

    @classmethod
    def of(cls, by_ref: dict[str, Backend]) -> ModelSet:
        """The set of these backends, keyed ``name:version``."""
        versions: dict[str, list[str]] = {}
        for ref in by_ref:
            name, _, version = ref.partition(":")
            versions.setdefault(name, []).append(version)
        return cls(by_ref, {n: tuple(sorted(v, key=_version_key)) for n, v in versions.items()})


async def load_models(loaded: LoadedConfig, transport: httpx.AsyncBaseTransport | None = None,
                      ) -> ModelSet:
    """Load and warm up every model; any failure stops with all problems listed."""
    backends: dict[str, Backend] = {}
    errors: list[str] = []
    for i, spec in enumerate(loaded.config.models):
        try:
            backend: Backend
            if spec.remote is not None:
                remote = RemoteBackend(spec.name, spec.version, spec.remote, transport=transport)
                await remote.start()
                backend = remote
            elif spec.python is not None:
                backend = load_custom(spec.python, spec.name, spec.version, spec.options)
            else:
                onnx = OnnxBackend(spec.name, spec.version, loaded.model_dir(spec),
                                   threads=spec.threads, offload=spec.offload,
                                   allow_nonfinite=spec.allow_nonfinite)
                onnx.warmup()
                backend = onnx
        except ConfigError as exc:
            errors.extend(f"models[{i}] ({spec.ref}): {e}" for e in exc.errors)
            continue
        backends[spec.ref] = backend
    if errors:
        for backend in backends.values():
            await backend.close()
        raise ConfigError(errors)
    return ModelSet.of(backends)
