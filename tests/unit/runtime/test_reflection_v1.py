"""lre.runtime.reflection_v1: grpc.reflection.v1, which current tools ask
first, lists and describes the services as v1alpha does, describes itself,
and is counted in the same reflection budget of the gate."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from lre.runtime import reflection_v1
from lre.runtime.limits import StreamLimits
from lre.runtime.serving import GrpcProcess, ServiceBinding
from lre.v1 import signing_pb2_grpc

METHOD = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


def _v1(name: str) -> Any:
    """A message class of the v1 protocol, from its descriptor alone."""
    reflection_v1.register_descriptor()
    descriptor = descriptor_pool.Default().FindMessageTypeByName(f"grpc.reflection.v1.{name}")
    return message_factory.GetMessageClass(descriptor)


@pytest.fixture
def process() -> Iterator[GrpcProcess]:
    binding = ServiceBinding(
        "lre.v1.SigningService",
        signing_pb2_grpc.add_SigningServiceServicer_to_server,
        signing_pb2_grpc.SigningServiceServicer(),  # type: ignore[abstract]  # never called
    )
    limits = StreamLimits(reflections=1, idle_s=5.0)
    served = GrpcProcess([binding], "127.0.0.1:0", max_workers=8, limits=limits,
                         reflection_enabled=True)  # fmt: skip
    served.start()
    yield served
    served.stop(grace=1)


def test_v1_lists_and_describes_the_services(process: GrpcProcess) -> None:
    request, response = _v1("ServerReflectionRequest"), _v1("ServerReflectionResponse")
    asked = [
        request(list_services=""),
        request(file_containing_symbol="lre.v1.SigningService"),
        request(file_containing_symbol=reflection_v1.SERVICE_NAME),
    ]
    with grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel:
        call = channel.stream_stream(METHOD, request.SerializeToString, response.FromString)
        listed, signing, itself = list(call(iter(asked), timeout=5))
    names = {s.name for s in listed.list_services_response.service}
    assert {"lre.v1.SigningService", reflection_v1.SERVICE_NAME} <= names
    assert "grpc.reflection.v1alpha.ServerReflection" in names
    files = [descriptor_pb2.FileDescriptorProto.FromString(f)
             for f in signing.file_descriptor_response.file_descriptor_proto]  # fmt: skip
    assert any(s.name == "SigningService" for f in files for s in f.service)
    (described,) = [descriptor_pb2.FileDescriptorProto.FromString(f)
                    for f in itself.file_descriptor_response.file_descriptor_proto]  # fmt: skip
    assert described.package == "grpc.reflection.v1"
    (method,) = described.service[0].method
    assert method.input_type == ".grpc.reflection.v1.ServerReflectionRequest"


def test_v1_streams_count_in_the_reflection_budget(process: GrpcProcess) -> None:
    request, response = _v1("ServerReflectionRequest"), _v1("ServerReflectionResponse")
    held: queue.Queue[object] = queue.Queue()

    def hold() -> Iterator[object]:
        yield request(list_services="")
        held.get()  # the stream stays open until the test ends it

    with grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel:
        call = channel.stream_stream(METHOD, request.SerializeToString, response.FromString)
        first = call(hold(), timeout=10)
        next(first)  # open, and answered
        with pytest.raises(grpc.RpcError) as refused:
            list(call(iter([request(list_services="")]), timeout=5))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        held.put(None)
        assert list(first) == []
