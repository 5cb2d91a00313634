"""The V2 gRPC service (``inference.GRPCInferenceService``) over the same Service as HTTP.

It runs in the gateway's process and event loop (grpc.aio, started and stopped by the app's
lifespan), so a gRPC request takes the HTTP request's path: the same snapshot, routing
(the sticky key and forcing header come from the call's metadata, whose keys are
lower-case), shadows, paired record, metrics and error messages, with gRPC status codes
(``convert.status_of``). The inference token, when one is set, comes from the
``authorization`` metadata. Each answer carries ``x-request-id`` (the caller's if sane) and,
once a model ran, ``x-shadowgate-model``/``-version``/``-variant`` in its trailing metadata.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import json_format

from gateway import __version__, describe
from gateway.errors import GatewayError, NotFound
from gateway.grpc import grpc_service_pb2 as pb
from gateway.grpc import grpc_service_pb2_grpc as pb_grpc
from gateway.grpc import model_config_pb2 as mc
from gateway.grpc.convert import decode_infer_request, encode_infer_response, status_of
from gateway.protocol.tensors import InferenceResponse
from gateway.requestids import request_id as pick_request_id
from gateway.runtime import Runtime
from gateway.service import Target, routing_call
from gateway.snapshot import Deployment

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
Metadata = tuple[tuple[str, str], ...]
Reply = TypeVar("Reply")
Outcome = tuple[pb.ModelInferResponse | None, GatewayError | None, Metadata]


def _headers(context: Context) -> dict[bytes, bytes]:
    """The call's metadata as the HTTP path reads headers (lower-case keys, bytes)."""
    return {key.encode(): value if isinstance(value, bytes) else value.encode()
            for key, value in context.invocation_metadata() or ()}


class InferenceServicer:
    """The RPCs of ``inference.GRPCInferenceService`` (see grpc_service.proto)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    # -- health and metadata --

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Context
                         ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Context
                          ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.runtime.ready)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Context
                             ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name="shadowgate", version=__version__,
                                         extensions=describe.EXTENSIONS)

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Context
                         ) -> pb.ModelReadyResponse:
        async def answer(target: Target) -> pb.ModelReadyResponse:
            return pb.ModelReadyResponse(ready=self.runtime.ready)
        return await self._about("ModelReady", request.name, request.version, context, answer)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Context
                            ) -> pb.ModelMetadataResponse:
        async def answer(target: Target) -> pb.ModelMetadataResponse:
            meta = describe.target_metadata(self.runtime.service.snapshot, target)
            return pb.ModelMetadataResponse(
                name=meta["name"], versions=meta["versions"], platform=meta["platform"],
                inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["inputs"]],
                outputs=[pb.ModelMetadataResponse.TensorMetadata(**t)
                         for t in meta["outputs"]])
        return await self._about("ModelMetadata", request.name, request.version, context,
                                 answer)

    async def ModelConfig(self, request: pb.ModelConfigRequest, context: Context
                          ) -> pb.ModelConfigResponse:
        async def answer(target: Target) -> pb.ModelConfigResponse:
            config = describe.model_config(target, self.runtime.max_body_bytes)
            return pb.ModelConfigResponse(config=json_format.ParseDict(config, mc.ModelConfig()))
        return await self._about("ModelConfig", request.name, request.version, context, answer)

    async def ModelStatistics(self, request: pb.ModelStatisticsRequest, context: Context
                              ) -> pb.ModelStatisticsResponse:
        async def answer() -> pb.ModelStatisticsResponse:
            stats = describe.model_stats(self.runtime.service.snapshot, request.name or None,
                                         request.version or None)
            return json_format.ParseDict({"model_stats": stats}, pb.ModelStatisticsResponse())
        return await self._guarded("ModelStatistics", request.name, context, answer)

    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest, context: Context
                              ) -> pb.RepositoryIndexResponse:
        async def answer() -> pb.RepositoryIndexResponse:
            index = describe.repository_index(self.runtime.service.snapshot)
            return pb.RepositoryIndexResponse(
                models=[pb.RepositoryIndexResponse.ModelIndex(**m) for m in index])
        return await self._guarded("RepositoryIndex", request.repository_name, context, answer)

    async def _about(self, method: str, name: str, version: str, context: Context,
                     answer: Callable[[Target], Awaitable[Reply]]) -> Reply:
        """An RPC about one deployment or model (resolved as HTTP resolves names)."""
        async def resolved() -> Reply:
            service = self.runtime.service
            return await answer(service.target(name, version or None, service.snapshot))
        return await self._guarded(method, name, context, resolved)

    async def _guarded(self, method: str, path: str, context: Context,
                       answer: Callable[[], Awaitable[Reply]]) -> Reply:
        """The inference token check, then ``answer``; a GatewayError becomes its gRPC
        status with the message HTTP gives (and an access line)."""
        start = time.perf_counter()
        headers = _headers(context)
        rid = pick_request_id(headers.get(b"x-request-id"))
        access = self.runtime.access
        try:
            if self.runtime.inference_check is not None:
                self.runtime.inference_check(headers.get(b"authorization"))
            reply = await answer()
        except GatewayError as exc:
            access.failure("grpc", method, path, exc.status_code, time.perf_counter() - start,
                           rid, exc.code, exc.message)
            code, details = status_of(exc)
            await context.abort(code, details, (("x-request-id", rid),))
        context.set_trailing_metadata((("x-request-id", rid),))
        if access.enabled:
            access.success("grpc", method, path, 200, time.perf_counter() - start, rid)
        return reply

    # -- inference --

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Context
                         ) -> pb.ModelInferResponse:
        response, error, trailing = await self._infer(request, _headers(context))
        if error is not None:
            code, details = status_of(error)
            await context.abort(code, details, trailing)
        context.set_trailing_metadata(trailing)
        assert response is not None
        return response

    async def ModelStreamInfer(self, requests: AsyncIterator[pb.ModelInferRequest],
                               context: Context) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """Each request of the stream answered in order; an error is that request's
        ``error_message`` and the stream goes on (as Triton's)."""
        headers = _headers(context)
        async for request in requests:
            response, error, _ = await self._infer(request, headers)
            if error is not None:
                yield pb.ModelStreamInferResponse(error_message=error.message)
            else:
                yield pb.ModelStreamInferResponse(infer_response=response)

    async def _infer(self, request: pb.ModelInferRequest, headers: dict[bytes, bytes]
                     ) -> Outcome:
        """One ModelInfer on the HTTP request's path: (response, error, trailing metadata),
        counted and logged once."""
        runtime = self.runtime
        service = runtime.service
        start = time.perf_counter()
        rid = pick_request_id(headers.get(b"x-request-id"))
        snap = service.snapshot
        target = None
        runtime.in_flight.enter()
        try:
            if runtime.inference_check is not None:
                runtime.inference_check(headers.get(b"authorization"))
            if not request.model_name:
                raise NotFound("model_name: expected a deployment or model name, got ''")
            target = service.target(request.model_name, request.model_version or None, snap)
            inference = decode_infer_request(request)
            call = routing_call(target, rid, headers, b"", inference.parameters)
            answer = await service.infer(target, inference, call, snap)
            response = encode_infer_response(InferenceResponse(
                target.spec.name if isinstance(target, Deployment) else answer.backend.name,
                answer.backend.version, answer.outputs, inference.id))
        except GatewayError as exc:
            ran = runtime.refused("grpc", "ModelInfer", request.model_name, rid, snap, target,
                                  exc, time.perf_counter() - start)
            trailing: Metadata = (("x-request-id", rid),)
            if ran is not None:
                trailing += (("x-shadowgate-model", ran[0]), ("x-shadowgate-version", ran[1]))
            return None, exc, trailing
        finally:
            runtime.in_flight.exit()
        runtime.answered("grpc", "ModelInfer", request.model_name, rid, answer, inference.rows,
                         time.perf_counter() - start)
        backend = answer.backend
        trailing = (("x-request-id", rid), ("x-shadowgate-model", backend.name),
                    ("x-shadowgate-version", backend.version))
        if answer.variant is not None:
            trailing += (("x-shadowgate-variant", answer.variant),)
        return response, None, trailing


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def start_server(runtime: Runtime, host: str, port: int, *, reuse_port: bool,
                       max_message_bytes: int) -> grpc.aio.Server:
    """A started grpc.aio server on ``host:port`` in the running loop.

    ``reuse_port``: several worker processes bind the same port (``--workers N``: the
    kernel spreads connections over them). Otherwise the port must be free: gRPC sets
    SO_REUSEPORT by default, which would let a second gateway bind the same port silently
    and take half its connections. Raises OSError when the port cannot be bound.
    """
    server = grpc.aio.server(options=[
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", -1),
    ])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        InferenceServicer(runtime), server)
    address = bind_address(host, port)
    try:
        server.add_insecure_port(address)
    except RuntimeError as exc:  # grpc reports a failed bind so
        raise OSError(f"gRPC: cannot listen on {address} ({exc}); is the port in use? Set "
                      "SHADOWGATE_GRPC_PORT (or --grpc-port), or 'off' for no gRPC") from None
    await server.start()
    log.info("V2 gRPC listening on %s", address)
    return server
