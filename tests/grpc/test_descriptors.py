"""Wire compatibility: every message, field, enum and RPC we define is Triton's, as shipped in
tritonclient's generated modules (names, numbers, types, repetition, oneofs, streaming)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from tritonclient.grpc import model_config_pb2 as triton_config  # noqa: F401 (registers)
from tritonclient.grpc import service_pb2 as triton_service

from gateway.grpc import grpc_service_pb2, model_config_pb2

TRITON = descriptor_pool.Default()


def messages(descriptors: list[Descriptor]) -> Iterator[Descriptor]:
    for message in descriptors:
        yield message
        yield from messages(list(message.nested_types))


OURS = [m for file in (grpc_service_pb2.DESCRIPTOR, model_config_pb2.DESCRIPTOR)
        for m in messages(list(file.message_types_by_name.values()))]
ENUMS = [*model_config_pb2.DESCRIPTOR.enum_types_by_name.values(),
         *(e for m in OURS for e in m.enum_types)]


def field_signature(field: FieldDescriptor) -> tuple[object, ...]:
    target = field.message_type or field.enum_type
    oneof = field.containing_oneof
    return (field.number, field.type, field.is_repeated, target and target.full_name,
            oneof and oneof.name)


def test_ours_are_in_our_own_pool_not_tritons() -> None:
    assert grpc_service_pb2.DESCRIPTOR.pool is not TRITON
    assert triton_service.DESCRIPTOR.pool is TRITON


@pytest.mark.parametrize("ours", OURS, ids=lambda m: m.full_name)
def test_message_fields_match_triton(ours: Descriptor) -> None:
    theirs = TRITON.FindMessageTypeByName(ours.full_name)
    for field in ours.fields:
        assert field.name in theirs.fields_by_name, f"{ours.full_name}.{field.name}"
        assert field_signature(field) == field_signature(theirs.fields_by_name[field.name]), \
            f"{ours.full_name}.{field.name}"
    assert ours.GetOptions().map_entry == theirs.GetOptions().map_entry


def test_empty_messages_are_empty_in_triton_too() -> None:
    for name in ("ServerLiveRequest", "ServerReadyRequest", "ServerMetadataRequest"):
        assert not grpc_service_pb2.DESCRIPTOR.message_types_by_name[name].fields
        assert not TRITON.FindMessageTypeByName(f"inference.{name}").fields


@pytest.mark.parametrize("ours", ENUMS, ids=lambda e: e.full_name)
def test_enum_values_match_triton(ours: EnumDescriptor) -> None:
    theirs = TRITON.FindEnumTypeByName(ours.full_name)
    assert {v.name: v.number for v in ours.values} == {v.name: v.number for v in theirs.values}


def test_service_methods_match_triton() -> None:
    ours = grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    theirs = TRITON.FindServiceByName("inference.GRPCInferenceService")
    assert ours.full_name == theirs.full_name  # the gRPC path is /inference.GRPCInferenceService/
    wanted = {"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata",
              "ModelInfer", "ModelStreamInfer", "ModelConfig", "ModelStatistics",
              "RepositoryIndex"}
    assert set(ours.methods_by_name) == wanted
    for method in ours.methods:
        other = theirs.methods_by_name[method.name]
        assert (method.input_type.full_name, method.output_type.full_name) == \
            (other.input_type.full_name, other.output_type.full_name), method.name
        assert (method.client_streaming, method.server_streaming) == \
            (other.client_streaming, other.server_streaming), method.name
