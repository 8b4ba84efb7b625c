"""Every SigningService RPC fed random fields answers OK or INVALID_ARGUMENT,
never UNKNOWN or INTERNAL, and the signer keeps serving."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings

from lre.v1 import signing_pb2
from tests.support.protofuzz import call_raw, message
from tests.support.rpc import SERVING, health_status
from tests.support.signer import SignerProcess

SERVICE = signing_pb2.DESCRIPTOR.services_by_name["SigningService"]


@pytest.mark.parametrize("method", [m.name for m in SERVICE.methods])
def test_random_requests_get_a_proper_status(signer_process: SignerProcess, method: str) -> None:
    @settings(
        max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(message(SERVICE.methods_by_name[method].input_type))
    def check(request: Message) -> None:
        code = call_raw(signer_process.grpc_address, f"/{SERVICE.full_name}/{method}", request)
        assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), (
            method,
            code,
            request,
        )

    check()
    assert health_status(signer_process.grpc_address) == SERVING
