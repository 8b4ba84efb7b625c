"""Who may call the signer: one table, every RPC listed, closed by default.

The seal key makes the provider's proofs and the wrap key opens every letter,
so only the server may use them: the names in `signer_callers`. Timestamps
and the certificate chains are public in substance (anyone may timestamp at
the HTTP `/tsa`), but the gRPC port is the internal link: only the callers
named in `timestamp_callers` get them, besides the server. A caller is
identified by the DNS name in its client certificate (mutual TLS). Without
TLS (tests on one machine; refused when `require_tls` is set, as in
production) there is no caller identity, so every caller may call anything.
"""

from __future__ import annotations

import enum
import logging

import grpc

from lre.runtime.callers import certificate_names, parse_names
from lre.runtime.status import abort

log = logging.getLogger("lre.signer.policy")


class Access(enum.Enum):
    SERVER = "signer_callers"  # the seal and wrap keys
    TIMESTAMPS = "timestamp_callers"  # timestamps and certificate chains


SERVER, TIMESTAMPS = Access.SERVER, Access.TIMESTAMPS
_S = "/lre.v1.SigningService/"
# Every RPC of the signer and who may call it. A method missing here is
# refused: a new RPC is closed until someone decides who may call it.
POLICY: dict[str, frozenset[Access]] = {
    _S + "Timestamp": frozenset({SERVER, TIMESTAMPS}),
    _S + "GetCertificateChain": frozenset({SERVER, TIMESTAMPS}),
    _S + "SealEvidence": frozenset({SERVER}),
    _S + "WrapKey": frozenset({SERVER}),
    _S + "WrapKeys": frozenset({SERVER}),
    _S + "UnwrapKey": frozenset({SERVER}),
    _S + "SignPdf": frozenset({SERVER}),  # PAdES with the seal key
    _S + "SignPdfDigest": frozenset({SERVER}),  # the same, over a digest
    _S + "GetPdfValidationData": frozenset({SERVER, TIMESTAMPS}),  # public certificates, CRLs
    _S + "RewrapKeys": frozenset({SERVER}),
}
# Health and reflection answer anyone who passed the TLS handshake (probes, grpcurl).
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class CallerPolicy:
    """The guard of every signer RPC (lre.runtime.serving.Guard)."""

    def __init__(self, signer_callers: str, timestamp_callers: str, tls: bool) -> None:
        self._names = {
            SERVER: parse_names(signer_callers),
            TIMESTAMPS: parse_names(timestamp_callers),
        }
        self._tls = tls

    def access(self, context: grpc.ServicerContext) -> frozenset[Access]:
        if not self._tls:
            return frozenset(Access)
        names = set(certificate_names(context))
        return frozenset(a for a, allowed in self._names.items() if names & allowed)

    def role_label(self, context: grpc.ServicerContext) -> str:
        """The caller's access as a metric label: "signer_callers",
        "timestamp_callers", both, or "none"."""
        return "+".join(sorted(a.value for a in self.access(context))) or "none"

    def __call__(self, method: str, context: grpc.ServicerContext) -> None:
        if method.startswith(OPEN_PREFIXES):
            return
        if not self.access(context) & POLICY.get(method, frozenset()):
            caller = ",".join(sorted(certificate_names(context))) or "a caller without a name"
            rpc = method.rsplit("/", 1)[-1]
            # Someone with a certificate of the CA reached for the keys: worth an alert.
            log.warning("caller refused", extra={"caller": caller, "method": rpc})
            abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"{caller} may not call {rpc}",
                error_info=("METHOD_NOT_ALLOWED", {"method": rpc}),
            )
