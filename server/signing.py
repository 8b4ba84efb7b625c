"""The server's client of the signer: seals, content-key wrapping, certificates.

The server never sees a private key: everything that needs one is a call here.
"""

from __future__ import annotations

import json

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lre.v1 import signing_pb2, signing_pb2_grpc
from server.domain.errors import DependencyUnavailable

SERVICE = "lre.v1.SigningService"
# Retry what failed before reaching the signer (a restart, a draining replica).
_RETRY = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": SERVICE}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


class SignerClient:
    def __init__(self, address: str, timeout_s: float = 10.0) -> None:
        self._channel = grpc.insecure_channel(
            address, options=[("grpc.service_config", _RETRY), ("grpc.enable_retries", 1)]
        )
        self._stub = signing_pb2_grpc.SigningServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._timeout_s = timeout_s

    def serving(self) -> bool:
        try:
            reply = self._health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=2)
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def _call(self, method: grpc.UnaryUnaryMultiCallable, request: object) -> object:  # type: ignore[type-arg]
        try:
            return method(request, timeout=self._timeout_s)
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise DependencyUnavailable("the signer is unavailable") from None
            raise

    def seal(self, content: bytes) -> bytes:
        """CAdES B-T SignedData (DER) encapsulating ``content``."""
        reply = self._call(
            self._stub.SealEvidence, signing_pb2.SealEvidenceRequest(content=content)
        )
        assert isinstance(reply, signing_pb2.SealEvidenceResponse)
        return reply.signed_data

    def wrap_key(self, key: bytes, context: bytes) -> bytes:
        reply = self._call(self._stub.WrapKey, signing_pb2.WrapKeyRequest(key=key, context=context))
        assert isinstance(reply, signing_pb2.WrapKeyResponse)
        return reply.wrapped_key

    def unwrap_key(self, wrapped: bytes, context: bytes) -> bytes:
        reply = self._call(
            self._stub.UnwrapKey, signing_pb2.UnwrapKeyRequest(wrapped_key=wrapped, context=context)
        )
        assert isinstance(reply, signing_pb2.UnwrapKeyResponse)
        return reply.key

    def certificate_chain(self, purpose: signing_pb2.KeyPurpose) -> list[bytes]:
        reply = self._call(
            self._stub.GetCertificateChain, signing_pb2.GetCertificateChainRequest(purpose=purpose)
        )
        assert isinstance(reply, signing_pb2.CertificateChain)
        return list(reply.certificates)

    def close(self) -> None:
        self._channel.close()
