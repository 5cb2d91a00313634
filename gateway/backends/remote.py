"""A model served by another Open Inference Protocol V2 server, called with httpx.

Connections are pooled per remote model. A remote that fails becomes a 502 (error or bad
answer) or 504 (no answer in time) for the caller when it answers the request, and an
error or timeout entry in the paired record when it is a shadow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import numpy as np
import orjson

from gateway.config.schema import RemoteSpec
from gateway.errors import BadGateway, ConfigError, GatewayTimeout
from gateway.protocol.signature import ClassifierInfo, Signature, TensorSpec
from gateway.protocol.tensors import DTYPES, Array
from gateway.protocol.v2 import tensor_json


def _specs(raw: Any) -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec(t["name"], t["datatype"], tuple(int(d) for d in t["shape"]))
                 for t in raw)


class RemoteBackend:
    """Remote V2 model; ``start()`` reads its signature from the remote's metadata."""

    platform = "remote_v2"

    def __init__(self, name: str, version: str, spec: RemoteSpec,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = name
        self.version = version
        self.spec = spec
        model = spec.model or name
        self._path = f"/v2/models/{model}" + (f"/versions/{spec.version}" if spec.version else "")
        self.client = httpx.AsyncClient(
            base_url=spec.url.rstrip("/"), timeout=spec.timeout_ms / 1000,
            limits=httpx.Limits(max_connections=spec.max_connections,
                                max_keepalive_connections=spec.max_connections),
            transport=transport)
        self.signature = Signature((), ())
        self.classifier: ClassifierInfo | None = None

    async def start(self) -> None:
        where = f"remote {self.spec.url}{self._path}"
        try:
            response = await self.client.get(self._path)
        except httpx.HTTPError as exc:
            raise ConfigError([f"{where}: unreachable: {exc!r}"]) from None
        if response.status_code != 200:
            raise ConfigError([f"{where}: metadata answered {response.status_code}: "
                               f"{response.text[:200]}"])
        try:
            meta = response.json()
            self.signature = Signature(_specs(meta["inputs"]), _specs(meta["outputs"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError([f"{where}: unreadable metadata: {exc!r}"]) from None
        params = meta.get("parameters") or {}
        if params.get("class_labels"):
            self.classifier = ClassifierInfo(
                tuple(params["class_labels"]), params.get("label_output", "label"),
                params.get("scores_output", "probabilities"), tuple(params.get("features", ())))

    async def infer(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        body = orjson.dumps({"inputs": [tensor_json(n, a) for n, a in inputs.items()]},
                            option=orjson.OPT_SERIALIZE_NUMPY)
        where = f"remote model {self.name}:{self.version} ({self.spec.url})"
        try:
            response = await self.client.post(
                self._path + "/infer", content=body,
                headers={"content-type": "application/json"})
        except httpx.TimeoutException:
            raise GatewayTimeout(f"{where} did not answer within "
                                 f"{self.spec.timeout_ms:g} ms") from None
        except httpx.HTTPError as exc:
            raise BadGateway(f"{where} failed: {exc!r}") from None
        if response.status_code != 200:
            raise BadGateway(f"{where} answered {response.status_code}: "
                             f"{response.text[:300]}")
        try:
            return {o["name"]: _array(o) for o in orjson.loads(response.content)["outputs"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise BadGateway(f"{where} sent an unreadable answer: {exc!r}") from None

    async def infer_batch(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        return await self.infer(inputs)

    async def close(self) -> None:
        await self.client.aclose()


def _array(tensor: dict[str, Any]) -> Array:
    return np.array(tensor["data"], dtype=DTYPES[tensor["datatype"]]).reshape(tensor["shape"])
