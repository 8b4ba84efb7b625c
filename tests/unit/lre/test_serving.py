"""lre.serving: a bug in a handler reaches the caller as INTERNAL with a
request id, never as UNKNOWN with the exception's text."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from lre.serving import REQUEST_ID_KEY, GrpcProcess, ServiceBinding
from lre.status import invalid_argument
from lre.v1 import signing_pb2, signing_pb2_grpc
from tests.support import NOT_SERVING, SERVING, health_status


class _Servicer(signing_pb2_grpc.SigningServiceServicer):
    def SealEvidence(self, request, context):  # type: ignore[no-untyped-def]
        raise RuntimeError("secret-detail /srv/internal/path")

    def WrapKey(self, request, context):  # type: ignore[no-untyped-def]
        invalid_argument(context, "key", "must be 32 bytes")


@pytest.fixture
def process() -> Iterator[GrpcProcess]:
    binding = ServiceBinding(
        "lre.v1.SigningService",
        signing_pb2_grpc.add_SigningServiceServicer_to_server,
        _Servicer(),  # type: ignore[abstract]  # the rest answer UNIMPLEMENTED
    )
    served = GrpcProcess([binding], "127.0.0.1:0", max_workers=2)
    served.set_serving(True)
    served.start()
    yield served
    served.stop(grace=1)


def test_unexpected_exception_is_internal_without_detail(
    process: GrpcProcess, caplog: pytest.LogCaptureFixture
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel:
        stub = signing_pb2_grpc.SigningServiceStub(channel)
        with caplog.at_level(logging.INFO), pytest.raises(grpc.RpcError) as raised:
            stub.SealEvidence(
                signing_pb2.SealEvidenceRequest(content=b"x"),
                metadata=((REQUEST_ID_KEY, "req-7"),),
                timeout=5,
            )
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert raised.value.details() == "internal error (request id req-7)"
    assert "secret-detail" not in str(raised.value)
    assert any(getattr(r, "code", None) == "INTERNAL" for r in caplog.records)


def test_rejections_keep_their_code_and_field(process: GrpcProcess) -> None:
    with (
        grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel,
        pytest.raises(grpc.RpcError) as raised,
    ):
        signing_pb2_grpc.SigningServiceStub(channel).WrapKey(
            signing_pb2.WrapKeyRequest(), timeout=5
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == "key: must be 32 bytes"
    status = rpc_status.from_call(raised.value)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("key", "must be 32 bytes")
    ]
    with (
        grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel,
        pytest.raises(grpc.RpcError) as raised,
    ):
        signing_pb2_grpc.SigningServiceStub(channel).UnwrapKey(
            signing_pb2.UnwrapKeyRequest(), timeout=5
        )
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_health_turns_not_serving_when_stopping(process: GrpcProcess) -> None:
    address = f"127.0.0.1:{process.port}"
    assert health_status(address, "lre.v1.SigningService") == SERVING
    process.health.enter_graceful_shutdown()
    assert health_status(address, "lre.v1.SigningService") == NOT_SERVING
