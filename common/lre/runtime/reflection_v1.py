"""gRPC server reflection v1 (``grpc.reflection.v1``), which current tools
(grpcurl, grpcui, Postman) ask first, beside the v1alpha that grpcio-reflection
serves. The v1 protocol is v1alpha's, message for message and field for field,
under a new package (grpc/reflection/v1/reflection.proto): its descriptor is
made from v1alpha's with the package renamed and registered in the default
pool (reflection then describes itself), and one servicer answers both. The
calls go through the same gate as every other (``/grpc.reflection.`` methods:
the reflection budget)."""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2

_ALPHA = ".grpc.reflection.v1alpha."
_V1 = ".grpc.reflection.v1."
SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
FILE_NAME = "grpc/reflection/v1/reflection.proto"


def _renamed(type_name: str) -> str:
    return _V1 + type_name.removeprefix(_ALPHA)


def register_descriptor() -> None:
    """The v1 file in the default pool, once."""
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(FILE_NAME)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name = FILE_NAME
    proto.package = "grpc.reflection.v1"
    proto.ClearField("options")
    for message in proto.message_type:
        for field in message.field:
            # Set only where it was: a scalar field has no type name.
            if field.type_name.startswith(_ALPHA):
                field.type_name = _renamed(field.type_name)
    for service in proto.service:
        for method in service.method:
            method.input_type = _renamed(method.input_type)
            method.output_type = _renamed(method.output_type)
    pool.AddSerializedFile(proto.SerializeToString())


def enable(service_names: Iterable[str], server: grpc.Server) -> None:
    """Serves grpc.reflection.v1 for ``service_names`` (which should name
    both reflection services) on ``server``."""
    register_descriptor()
    servicer = reflection.ReflectionServicer(list(service_names))
    handler = grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                # The same messages on the wire: v1alpha's classes read and write v1.
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
