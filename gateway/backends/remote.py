"""A model served by another Open Inference Protocol V2 server, called with httpx.

Connections are pooled per remote model. ``start()`` reads the remote's metadata and merges
it with what the config declares (remote_meta.py). A remote that fails becomes a 502 (error
or bad answer) or 504 (no answer in time) for the caller when it answers the request, and
an error or timeout entry in the paired record when it is a shadow; a remote that refuses
the input as invalid (400, 413, 422) gives the caller that status and the remote's message.

Every call carries ``x-request-id`` and the V2 body ``id`` (the caller's, else the request
id); a concatenated shadow micro-batch carries the first request's id and
``x-shadowgate-batch-ids`` with all of them, comma-separated.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx
import numpy as np
import orjson

from gateway.backends.base import CallContext
from gateway.backends.card import ModelCard
from gateway.backends.remote_meta import Declared, RemoteMetadata, parse_metadata, resolve
from gateway.config.schema import RemoteSpec
from gateway.errors import BadGateway, ConfigError, GatewayTimeout, RemoteRejected
from gateway.protocol.signature import ClassifierInfo, Signature, TensorSpec, fit_shape
from gateway.protocol.tensors import DTYPES, Array
from gateway.protocol.v2 import tensor_json

log = logging.getLogger(__name__)

# A remote's refusal of the input itself; any other 4xx (401, 403, 404, ...) is the
# gateway's misconfiguration, not the caller's fault, and stays a 502.
PASSED_ON = frozenset({400, 413, 422})
BATCH_IDS_HEADER = "x-shadowgate-batch-ids"


class RemoteBackend:
    """Remote V2 model; ``start()`` reads its signature from the remote's metadata."""

    platform = "remote_v2"

    def __init__(self, name: str, version: str, spec: RemoteSpec,
                 transport: httpx.AsyncBaseTransport | None = None,
                 card: ModelCard | None = None) -> None:
        self.name = name
        self.version = version
        self.spec = spec
        self.declared = Declared.of(spec, card)
        model = spec.model or name
        self._path = f"/v2/models/{model}" + (f"/versions/{spec.version}" if spec.version else "")
        self.where = f"{spec.url.rstrip('/')}{self._path}"
        self.client = httpx.AsyncClient(
            base_url=spec.url.rstrip("/"), timeout=spec.timeout_ms / 1000,
            limits=httpx.Limits(max_connections=spec.max_connections,
                                max_keepalive_connections=spec.max_connections),
            transport=transport)
        self.signature = Signature.unknown()
        self.classifier: ClassifierInfo | None = None
        self.metadata: RemoteMetadata | None = None
        self.notes: list[str] = []  # what could not be learned
        self.mismatches: list[str] = []  # where the config and the remote disagree
        self._fit: dict[str, TensorSpec] = {}

    async def start(self) -> None:
        """Read the remote's metadata; raises ConfigError when it does not answer (or
        answers nonsense). What it could not learn and any disagreement with the config
        are logged as warnings (and kept in ``notes`` and ``mismatches``)."""
        try:
            response = await self.client.get(self._path)
        except httpx.HTTPError as exc:
            raise ConfigError([f"remote {self.where} did not answer: "
                               f"{type(exc).__name__}: {exc}"]) from None
        if response.status_code != 200:
            raise ConfigError([f"remote {self.where}: metadata answered "
                               f"{response.status_code}: {response.text[:200]}"])
        try:
            self.metadata = parse_metadata(response.json())
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError([f"remote {self.where}: unreadable metadata: {exc!r}"]) from None
        resolved = resolve(self.declared, self.metadata)
        self.signature = resolved.signature
        self.classifier = resolved.classifier
        self.notes = resolved.notes
        self.mismatches = resolved.mismatches
        self._fit = {s.name: s for s in self.signature.outputs}
        for note in self.notes:
            log.warning("remote model %s:%s (%s): %s", self.name, self.version, self.where, note)
        for mismatch in self.mismatches:
            log.warning("remote model %s:%s (%s) does not match the config: %s; the config's "
                        "declaration is used", self.name, self.version, self.where, mismatch)

    async def infer(self, inputs: Mapping[str, Array], context: CallContext | None = None
                    ) -> dict[str, Array]:
        body: dict[str, Any] = {"inputs": [tensor_json(n, a) for n, a in inputs.items()]}
        headers = {"content-type": "application/json"}
        if context is not None:
            body["id"] = context.v2_id or context.request_id
            headers["x-request-id"] = context.request_id
            if context.batch_ids:
                headers[BATCH_IDS_HEADER] = ",".join(context.batch_ids)
        where = f"remote model {self.name}:{self.version} ({self.spec.url})"
        try:
            response = await self.client.post(
                self._path + "/infer", headers=headers,
                content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))
        except httpx.TimeoutException:
            raise GatewayTimeout(f"{where} did not answer within "
                                 f"{self.spec.timeout_ms:g} ms") from None
        except httpx.HTTPError as exc:
            raise BadGateway(f"{where} failed: {exc!r}") from None
        if response.status_code != 200:
            message = _error_message(response)
            if response.status_code in PASSED_ON:
                raise RemoteRejected(f"{where} refused the input: {message}",
                                     response.status_code)
            raise BadGateway(f"{where} answered {response.status_code}: {message}")
        try:
            outputs = {o["name"]: _array(o) for o in orjson.loads(response.content)["outputs"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise BadGateway(f"{where} sent an unreadable answer: {exc!r}") from None
        if self._fit:
            # [n, 1] where [n] is declared (or the other way round): the declared shape.
            outputs = {k: fit_shape(a, self._fit[k]) if k in self._fit else a
                       for k, a in outputs.items()}
        return outputs

    async def infer_batch(self, inputs: Mapping[str, Array], context: CallContext | None = None
                          ) -> dict[str, Array]:
        return await self.infer(inputs, context)

    async def close(self) -> None:
        await self.client.aclose()


def _error_message(response: httpx.Response) -> str:
    """The remote's own message: V2 ``{"error": ...}``, FastAPI's ``detail``, or the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            if body.get(key):
                value = body[key]
                return (value if isinstance(value, str)
                        else orjson.dumps(value).decode())[:300]
    return response.text[:300]


def _array(tensor: dict[str, Any]) -> Array:
    return np.array(tensor["data"], dtype=DTYPES[tensor["datatype"]]).reshape(tensor["shape"])
