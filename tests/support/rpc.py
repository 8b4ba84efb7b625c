"""gRPC from tests: a channel (plaintext or mutual TLS), the health check, the
fields an INVALID_ARGUMENT names."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from lre.dev.tls import TlsFiles
from lre.runtime.serving import GrpcProcess, ServiceBinding

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def channel(address: str, tls: TlsFiles | None = None, caller: str | None = None) -> grpc.Channel:
    """Plaintext, or TLS trusting ``tls.ca`` with ``caller``'s client certificate
    (a name of lre.dev.tls, e.g. "operator") when given."""
    if tls is None:
        return grpc.insecure_channel(address)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.ca.read_bytes(),
        private_key=tls.client_key(caller).read_bytes() if caller else None,
        certificate_chain=tls.client_cert(caller).read_bytes() if caller else None,
    )
    return grpc.secure_channel(address, credentials)


def health_status(
    address: str,
    service: str = "",
    timeout: float = 2,
    tls: TlsFiles | None = None,
    caller: str | None = None,
) -> int | None:
    with channel(address, tls, caller) as channel_:
        try:
            reply = health_pb2_grpc.HealthStub(channel_).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return None
        return int(reply.status)


def error_info(error: grpc.RpcError) -> tuple[str, dict[str, str]]:
    """The google.rpc.ErrorInfo of an error's rich status: (reason, metadata);
    fails when there is none (every refusal carries one, in domain "lre")."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, error
    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in status.details), status
    assert info.domain == "lre", info
    return info.reason, dict(info.metadata)


def field_violations(error: grpc.RpcError) -> dict[str, str]:
    """The BadRequest field violations in an error's rich status: {field: description}."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    found = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.update({v.field: v.description for v in bad.field_violations})
    return found


@contextlib.contextmanager
def serving(binding: ServiceBinding, max_workers: int = 2) -> Iterator[GrpcProcess]:
    """``binding`` served on a free local port, SERVING, stopped afterwards."""
    served = GrpcProcess([binding], "127.0.0.1:0", max_workers=max_workers)
    served.set_serving(True)
    served.start()
    try:
        yield served
    finally:
        served.stop(grace=1)
