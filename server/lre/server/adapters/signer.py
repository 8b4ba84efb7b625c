"""The server's client of the signer: seals, PDF signatures, content-key wrapping, certificates.

The server never sees a private key: everything that needs one is a call here.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import uuid
from dataclasses import dataclass
from typing import Literal

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lre.runtime import jsonlines, tracing
from lre.runtime.certfiles import CertificateFiles
from lre.runtime.gate import REQUEST_ID_KEY
from lre.runtime.tls import reloading_channel_credentials
from lre.server.domain.errors import DependencyUnavailable
from lre.v1 import signing_pb2, signing_pb2_grpc

SERVICE = "lre.v1.SigningService"
logger = logging.getLogger(__name__)
# The target may name several signers ("ipv4:a:p,b:p", "dns:///name:port"):
# calls go round-robin over the connected ones. Every signer call is free of
# side effects on the signer, so what failed with UNAVAILABLE (a signer
# killed, restarting, draining, or without its token) is retried, and
# round-robin sends the retry to the next signer. No client-side health
# checking: its Watch stream would hold one of the signer's RPC threads per
# connection for good (a synchronous gRPC server), and the retry covers it.
_SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{"service": SERVICE}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
)


@dataclass(frozen=True)
class PdfValidationData:
    """The certificates (DER: seal, TSA, CAs) and CRLs (DER) a proof's DSS carries."""

    certificates: tuple[bytes, ...]
    crls: tuple[bytes, ...]
    id: bytes


class StaleValidationData(Exception):
    """The signer's validation data changed since it was fetched (a new CRL)."""


# A wrapped key starts with its format and the id of the wrap key that made it
# (signer/lre/signer/wrapping.py): what `lre-server rekey` compares to skip current ones.
WRAPPED_HEADER_BYTES = 9

# Seals a batch keeps in flight at once: enough to keep a pool of signer
# processes busy, few enough not to starve other callers.
_IN_FLIGHT = 32


KeyPurpose = Literal["seal", "timestamping"]
_PURPOSES = {
    "seal": signing_pb2.KEY_PURPOSE_SEAL,
    "timestamping": signing_pb2.KEY_PURPOSE_TIMESTAMPING,
}


def _request_id() -> tuple[tuple[str, str], ...] | None:
    """The id of the request being served (none in a worker), passed on so
    that the signer's log lines of the call carry the same id, and the trace
    context when tracing is on (the signer's span joins the request's trace)."""
    rid = jsonlines.request_id.get()
    passed = (((REQUEST_ID_KEY, rid),) if rid else ()) + tracing.outgoing()
    return passed or None


class SignerClient:
    def __init__(
        self,
        address: str,
        timeout_s: float = 10.0,
        connections: int = 4,
        credentials: grpc.ChannelCredentials | None = None,
        certificates: CertificateFiles | None = None,
    ) -> None:
        """``address``: a gRPC target, one signer or several (see
        ServerSettings.signer_address). ``credentials``: mutual TLS to the
        signer; None is plaintext. ``certificates``: mutual TLS from files
        instead, the channels made again when the files change (renewed
        certificates reach the signer without a restart)."""
        self._address = address
        self._connections = connections
        self._certificates = certificates
        self._generation = certificates.current.generation if certificates else 0
        self._rebuild = threading.Lock()
        self._timeout_s = timeout_s
        self._open(reloading_channel_credentials(certificates) if certificates else credentials)

    def _open(self, credentials: grpc.ChannelCredentials | None) -> None:
        options = [
            ("grpc.service_config", _SERVICE_CONFIG),
            ("grpc.enable_retries", 1),
            ("grpc.use_local_subchannel_pool", 1),
            # A signer that comes back is connected to again within about two
            # seconds of its return (gRPC's backoff would grow to two minutes
            # over a long outage, and the proofs and notices waiting with it):
            # a connection attempt to a neighbour on the provider's network
            # costs next to nothing. An attempt that gets no answer at all (an
            # address that drops packets) still waits up to gRPC's 20 s.
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        # Several connections: the signer runs as several processes sharing a
        # port, and the kernel spreads them by connection, not by call.
        self._channels = [
            grpc.secure_channel(self._address, credentials, options=options)
            if credentials
            else grpc.insecure_channel(self._address, options=options)
            for _ in range(self._connections)
        ]
        self._stubs = itertools.cycle(
            [signing_pb2_grpc.SigningServiceStub(c) for c in self._channels]
        )
        self._health = health_pb2_grpc.HealthStub(self._channels[0])

    def _reload(self) -> None:
        """New channels when the certificate files changed; the old ones
        closed once the calls they carry have had their deadline."""
        if self._certificates is None:
            return
        loaded = self._certificates.refresh()
        if loaded.generation == self._generation:
            return
        with self._rebuild:
            if loaded.generation == self._generation:
                return
            old = self._channels
            self._open(reloading_channel_credentials(self._certificates))
            self._generation = loaded.generation
        closing = threading.Timer(self._timeout_s + 5, lambda: [c.close() for c in old])
        closing.daemon = True
        closing.start()

    @property
    def _stub(self) -> signing_pb2_grpc.SigningServiceStub:
        self._reload()
        return next(self._stubs)

    def serving(self) -> bool:
        self._reload()
        try:
            reply = self._health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=2)
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def _call(self, method: grpc.UnaryUnaryMultiCallable, request: object) -> object:  # type: ignore[type-arg]
        try:
            return method(request, timeout=self._timeout_s, metadata=_request_id())
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise DependencyUnavailable("the signer is unavailable") from None
            raise

    def seal(self, content: bytes) -> bytes:
        """CAdES B-LT SignedData (DER) encapsulating ``content``."""
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
                signing_pb2.SealEvidenceRequest(content=content),
                timeout=self._timeout_s,
                metadata=_request_id(),
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

    def timestamp(self, request: bytes) -> bytes:
        """An RFC 3161 TimeStampResp (DER) from the signer's TSA for a TimeStampReq (DER)."""
        reply = self._call(
            self._stub.Timestamp, signing_pb2.TimestampRequest(time_stamp_req=request)
        )
        assert isinstance(reply, signing_pb2.TimestampResponse)
        return reply.time_stamp_resp

    def pdf_validation_data(self) -> PdfValidationData:
        """What a proof's DSS carries (see lre.server.proofs.pades)."""
        reply = self._call(
            self._stub.GetPdfValidationData, signing_pb2.GetPdfValidationDataRequest()
        )
        assert isinstance(reply, signing_pb2.PdfValidationData)
        return PdfValidationData(tuple(reply.certificates), tuple(reply.crls), reply.id)

    def sign_pdf_digest(self, document_digest: bytes, validation_data_id: bytes) -> bytes:
        """The CMS for a PDF signature dictionary's /Contents, over ``document_digest``.
        Raises StaleValidationData when the signer's validation data is no
        longer ``validation_data_id``."""
        request = signing_pb2.SignPdfDigestRequest(
            document_digest=document_digest, validation_data_id=validation_data_id
        )
        try:
            reply = self._call(self._stub.SignPdfDigest, request)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise StaleValidationData(exc.details() or "") from None
            raise
        assert isinstance(reply, signing_pb2.SignPdfDigestResponse)
        return reply.signed_data

    def wrap_key(self, key: bytes, context: bytes) -> bytes:
        reply = self._call(self._stub.WrapKey, signing_pb2.WrapKeyRequest(key=key, context=context))
        assert isinstance(reply, signing_pb2.WrapKeyResponse)
        return reply.wrapped_key

    def wrap_keys(self, keys: list[tuple[bytes, bytes]]) -> list[bytes]:
        """Wraps (key, context) pairs in one call, in order."""
        request = signing_pb2.WrapKeysRequest(
            keys=[signing_pb2.WrapKeyRequest(key=k, context=c) for k, c in keys]
        )
        reply = self._call(self._stub.WrapKeys, request)
        assert isinstance(reply, signing_pb2.WrapKeysResponse)
        return list(reply.wrapped_keys)

    def rewrap_keys(self, keys: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bool]]:
        """(wrapped, context) pairs under the signer's current wrap key, in
        order, each with whether it changed; the keys never leave the signer."""
        request = signing_pb2.RewrapKeysRequest(
            keys=[signing_pb2.UnwrapKeyRequest(wrapped_key=w, context=c) for w, c in keys]
        )
        reply = self._call(self._stub.RewrapKeys, request)
        assert isinstance(reply, signing_pb2.RewrapKeysResponse)
        return [(k.wrapped_key, k.rewrapped) for k in reply.keys]

    def unwrap_key(self, wrapped: bytes, context: bytes) -> bytes:
        reply = self._call(
            self._stub.UnwrapKey, signing_pb2.UnwrapKeyRequest(wrapped_key=wrapped, context=context)
        )
        assert isinstance(reply, signing_pb2.UnwrapKeyResponse)
        return reply.key

    def certificate_chain(self, purpose: KeyPurpose) -> list[bytes]:
        """The current chain of the seal or the timestamping key, leaf first."""
        request = signing_pb2.GetCertificateChainRequest(purpose=_PURPOSES[purpose])
        reply = self._call(self._stub.GetCertificateChain, request)
        assert isinstance(reply, signing_pb2.CertificateChain)
        return list(reply.certificates)

    def close(self) -> None:
        for channel in self._channels:
            channel.close()


def letter_key_context(letter_id: uuid.UUID) -> bytes:
    """What a letter's content key is bound to when wrapped: the letter."""
    return f"letters/{letter_id}".encode()


def mailing_key_context(mailing_id: uuid.UUID) -> bytes:
    """A mailing's content key is bound to the mailing, whose letters share it."""
    return f"mailings/{mailing_id}".encode()


@dataclass(frozen=True)
class ContentKey:
    letter_id: uuid.UUID
    key: bytes
    wrapped: bytes


class ContentKeys:
    """Fresh AES-256 content keys, wrapped by the signer ahead of use, a batch
    per call: one signer call per ``batch`` deposits instead of one each.

    A key is bound to the letter it will protect, so the letter's id is chosen
    with its key. The deposit that finds the stock half gone wraps the next
    batch, outside the lock, while the others go on taking keys. Keys not yet
    used live only in this process's memory; if it stops they are gone, and
    nothing refers to them."""

    def __init__(self, signer: SignerClient, batch: int = 32) -> None:
        self._signer = signer
        self._batch = batch
        self._ready: list[ContentKey] = []
        self._refilling = False
        self._lock = threading.Lock()

    def take(self) -> ContentKey:
        with self._lock:
            key = self._ready.pop() if self._ready else None
            refill = key is None or (len(self._ready) < self._batch // 2 and not self._refilling)
            self._refilling = self._refilling or refill
        if not refill:
            assert key is not None
            return key
        try:
            fresh = self._wrap_batch()
        except DependencyUnavailable:
            if key is None:
                raise
            logger.warning("could not wrap content keys ahead; will retry")
            return key
        finally:
            with self._lock:
                self._refilling = False
        if key is None:
            key = fresh.pop()
        with self._lock:
            self._ready.extend(fresh[: max(0, 2 * self._batch - len(self._ready))])
        return key

    def _wrap_batch(self) -> list[ContentKey]:
        ids = [uuid.uuid4() for _ in range(self._batch)]
        keys = [os.urandom(32) for _ in ids]
        wrapped = self._signer.wrap_keys(
            [(k, letter_key_context(i)) for i, k in zip(ids, keys, strict=True)]
        )
        return [ContentKey(*item) for item in zip(ids, keys, wrapped, strict=True)]
