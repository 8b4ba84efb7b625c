"""Random protobuf requests generated from the message descriptors, so that
every RPC, present and future, can be fed malformed fields."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
from google.protobuf import descriptor, message_factory, timestamp_pb2
from google.protobuf.message import Message
from hypothesis import strategies as st

KNOWN_PARTY = uuid.UUID("00000000-0000-4000-8000-000000000001")
# What a fuzzed call of the server may answer: never UNKNOWN or INTERNAL.
ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNIMPLEMENTED,
}

# Strings that look like our resource names, and plain junk.
names = st.one_of(
    st.just(f"parties/{KNOWN_PARTY}"),
    st.builds(lambda u: f"parties/{u}", st.uuids()),
    st.builds(lambda u: f"parties/{KNOWN_PARTY}/consents/{u}", st.uuids()),
    st.text(max_size=40),
    st.sampled_from(["", "parties/", "parties/../../etc", "letters/1", "parties/%00"]),
)


def _field_value(field: descriptor.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    kinds = descriptor.FieldDescriptor
    if field.type == kinds.TYPE_MESSAGE:
        assert field.message_type is not None
        if field.message_type.full_name == "google.protobuf.Timestamp":
            # Times a Timestamp may hold (years 1 to 9999), and what the wire
            # carries beyond: any int64 of seconds, any int32 of nanos.
            seconds = st.one_of(
                st.integers(min_value=-62135596800, max_value=253402300799),
                st.integers(min_value=-(2**63), max_value=2**63 - 1),
            )
            nanos = st.one_of(st.just(0), st.integers(min_value=-(2**31), max_value=2**31 - 1))
            return st.builds(_timestamp, seconds, nanos)
        return message(field.message_type, depth + 1)
    if field.type == kinds.TYPE_STRING:
        return (
            names
            if field.name in ("name", "party", "recipient", "sender")
            else st.text(max_size=300)
        )
    if field.type == kinds.TYPE_BYTES:
        return st.binary(max_size=300)
    if field.type == kinds.TYPE_BOOL:
        return st.booleans()
    if field.type == kinds.TYPE_ENUM:
        return st.integers(min_value=-5, max_value=10)
    return st.integers(min_value=-(2**31), max_value=2**31 - 1)


def _timestamp(seconds: int, nanos: int) -> Any:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def message(desc: descriptor.Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    cls = message_factory.GetMessageClass(desc)
    if depth > 2:
        return st.just(cls())

    def build(values: dict[str, Any]) -> Message:
        msg = cls()
        for name, value in values.items():
            field = desc.fields_by_name[name]
            if field.is_repeated:
                for item in value:
                    if field.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
                        getattr(msg, name).add().CopyFrom(item)
                    else:
                        getattr(msg, name).append(item)
            elif field.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
                getattr(msg, name).CopyFrom(value)
            else:
                setattr(msg, name, value)
        return msg

    fields = {}
    for field in desc.fields:
        value = _field_value(field, depth)
        if field.is_repeated:
            value = st.lists(value, max_size=3)
        fields[field.name] = value
    return st.fixed_dictionaries({}, optional=fields).map(build)


def call_raw(address: str, method: str, request: Message) -> grpc.StatusCode:
    """The status code of one call; fails on a stack trace in the details."""
    with grpc.insecure_channel(address) as channel:
        call: Any = channel.unary_unary(
            method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=lambda b: b,
        )
        try:
            call(request, timeout=10)
        except grpc.RpcError as exc:
            assert "Traceback" not in (exc.details() or "")
            return exc.code()
    return grpc.StatusCode.OK
