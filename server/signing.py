"""The server's client of the signer: seals, content-key wrapping, certificates.

The server never sees a private key: everything that needs one is a call here.
"""

from __future__ import annotations

import itertools
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


# Seals a batch keeps in flight at once: enough to keep a pool of signer
# processes busy, few enough not to starve other callers.
_IN_FLIGHT = 32


class SignerClient:
    def __init__(
        self,
        address: str,
        timeout_s: float = 10.0,
        connections: int = 4,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        """``credentials``: mutual TLS to the signer; None is plaintext."""
        options = [
            ("grpc.service_config", _RETRY),
            ("grpc.enable_retries", 1),
            ("grpc.use_local_subchannel_pool", 1),
        ]
        # Several connections: the signer runs as several processes sharing a
        # port, and the kernel spreads them by connection, not by call.
        self._channels = [
            grpc.secure_channel(address, credentials, options=options)
            if credentials
            else grpc.insecure_channel(address, options=options)
            for _ in range(connections)
        ]
        self._stubs = itertools.cycle(
            [signing_pb2_grpc.SigningServiceStub(c) for c in self._channels]
        )
        self._health = health_pb2_grpc.HealthStub(self._channels[0])
        self._timeout_s = timeout_s

    @property
    def _stub(self) -> signing_pb2_grpc.SigningServiceStub:
        return next(self._stubs)

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

    def seal_many(self, contents: list[bytes]) -> list[bytes]:
        """Seals concurrently (over all connections), in the order given."""
        seals: list[bytes] = []
        for start in range(0, len(contents), _IN_FLIGHT):
            seals.extend(self._seal_concurrently(contents[start : start + _IN_FLIGHT]))
        return seals

    def _seal_concurrently(self, contents: list[bytes]) -> list[bytes]:
        calls = [
            self._stub.SealEvidence.future(
                signing_pb2.SealEvidenceRequest(content=content), timeout=self._timeout_s
            )
            for content in contents
        ]
        seals = []
        for call in calls:
            try:
                seals.append(call.result().signed_data)
            except grpc.RpcError as exc:
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise DependencyUnavailable("the signer is unavailable") from None
                raise
        return seals

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
        for channel in self._channels:
            channel.close()
