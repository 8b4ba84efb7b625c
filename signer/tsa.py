"""RFC 3161 time-stamping authority (profile of ETSI EN 319 422).

Every request gets a TimeStampResp: granted with a token, or rejection with
the PKIFailureInfo that says why. Tokens are CMS SignedData over a TSTInfo,
signed on the token with ESSCertIDv2 (RFC 5816) in signing-certificate-v2.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Callable

from asn1crypto import algos, cms, core, tsp, x509

from signer import metrics
from signer.clock import ClockCheck
from signer.errors import BadTimestampRequest, ClockNotTrusted, SignerError, TokenUnavailable
from signer.token import Token

log = logging.getLogger("lre.signer.tsa")

DIGEST_LENGTHS = {"sha256": 32, "sha384": 48, "sha512": 64}
QC_STATEMENTS_OID = "1.3.6.1.5.5.7.1.3"
ESI4_QTST_STATEMENT_1 = "0.4.0.19422.1.1"


class _QcStatement(core.Sequence):
    _fields = [
        ("statement_id", core.ObjectIdentifier),
        ("statement_info", core.Any, {"optional": True}),
    ]


class _QcStatements(core.SequenceOf):
    _child_spec = _QcStatement


class TimeStampResp(core.Sequence):
    """RFC 3161 TimeStampResp. asn1crypto's makes the token mandatory; RFC 3161
    has it OPTIONAL, and it is absent from every rejection."""

    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


class SignedDataBuilder:
    """Signs CMS SignedData with one token key; shared by the TSA and the sealer."""

    def __init__(self, token: Token, key_label: str, certificate_der: bytes) -> None:
        self.token = token
        self.key_label = key_label
        self.certificate_der = certificate_der
        certificate = x509.Certificate.load(certificate_der)
        self.subject_der = bytes(certificate.subject.dump())
        # Static parts are kept as DER and loaded afresh for each message:
        # asn1crypto values put into several parents slow down with each reuse.
        self._sid_der = bytes(
            cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": {
                        "issuer": certificate.issuer,
                        "serial_number": certificate.serial_number,
                    }
                }
            ).dump()
        )
        # ESSCertIDv2 with SHA-256, whose hashAlgorithm is omitted as DEFAULT.
        self._signing_certificate_v2_der = bytes(
            cms.CMSAttribute(
                {
                    "type": "signing_certificate_v2",
                    "values": [{"certs": [{"cert_hash": hashlib.sha256(certificate_der).digest()}]}],
                }
            ).dump()
        )

    def sign(
        self,
        content_type: str,
        content: bytes,
        extra_signed: list[cms.CMSAttribute],
        include_certificates: list[bytes],
        unsigned: Callable[[bytes], list[cms.CMSAttribute]] | None = None,
    ) -> cms.ContentInfo:
        """SignedData encapsulating ``content``; ``unsigned`` builds the unsigned
        attributes from the signature value (CAdES signature timestamps)."""
        signed_attrs = cms.CMSAttributes(
            [
                cms.CMSAttribute({"type": "content_type", "values": [content_type]}),
                cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(content).digest()]}),
                *extra_signed,
                cms.CMSAttribute.load(self._signing_certificate_v2_der),
            ]
        )
        signature = self.token.sign_digest(self.key_label, hashlib.sha256(signed_attrs.dump()).digest())
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier.load(self._sid_der),
                "digest_algorithm": {"algorithm": "sha256"},
                "signed_attrs": signed_attrs,
                "signature_algorithm": {"algorithm": "sha256_ecdsa"},
                "signature": signature,
            }
        )
        if unsigned is not None:
            signer_info["unsigned_attrs"] = cms.CMSAttributes(unsigned(signature))
        signed_data = cms.SignedData(
            {
                "version": "v3",
                "digest_algorithms": [{"algorithm": "sha256"}],
                "encap_content_info": {
                    "content_type": content_type,
                    # asn1crypto wants the TSTInfo as a value; load() keeps its exact bytes.
                    "content": tsp.TSTInfo.load(content) if content_type == "tst_info" else content,
                },
                "certificates": [x509.Certificate.load(der) for der in include_certificates] or None,
                "signer_infos": [signer_info],
            }
        )
        if not include_certificates:
            del signed_data["certificates"]
        return cms.ContentInfo({"content_type": "signed_data", "content": signed_data})


class TimestampAuthority:
    def __init__(
        self,
        signer: SignedDataBuilder,
        clock: ClockCheck,
        policy_oid: str,
        accuracy_ms: int,
        qualified: bool,
    ) -> None:
        self._signer = signer
        self._clock = clock
        self._policy = policy_oid
        seconds, millis = divmod(accuracy_ms, 1000)
        self._accuracy_der = bytes(
            tsp.Accuracy({k: v for k, v in (("seconds", seconds), ("millis", millis)) if v}).dump()
        )
        self._tsa_name_der = bytes(
            x509.GeneralName({"directory_name": x509.Name.load(signer.subject_der)}).dump()
        )
        self._extensions_der = (
            tsp.Extensions(
                [
                    {
                        "extn_id": QC_STATEMENTS_OID,
                        "critical": False,
                        "extn_value": _QcStatements([{"statement_id": ESI4_QTST_STATEMENT_1}]).dump(),
                    }
                ]
            ).dump()
            if qualified
            else None
        )

    @staticmethod
    def parse(request_der: bytes) -> tsp.TimeStampReq:
        """Decodes and checks a TimeStampReq, or raises BadTimestampRequest."""
        try:
            request = tsp.TimeStampReq.load(request_der, strict=True)
            request.native  # noqa: B018 -- asn1crypto parses lazily; force it here
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise BadTimestampRequest("bad_data_format", "not a DER TimeStampReq") from exc
        if request["version"].native != "v1":
            raise BadTimestampRequest("bad_request", "version must be 1")
        imprint = request["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        if algorithm not in DIGEST_LENGTHS:
            raise BadTimestampRequest("bad_alg", f"hash algorithm {algorithm} not accepted")
        if imprint["hash_algorithm"]["parameters"].native is not None:
            raise BadTimestampRequest("bad_alg", "hash algorithm parameters must be absent or NULL")
        if len(imprint["hashed_message"].native) != DIGEST_LENGTHS[algorithm]:
            raise BadTimestampRequest("bad_data_format", f"digest length does not match {algorithm}")
        if request["extensions"].native:
            raise BadTimestampRequest("unaccepted_extensions", "no request extension is supported")
        return request

    def issue(self, request: tsp.TimeStampReq) -> cms.ContentInfo:
        """A timestamp token for a parsed request."""
        requested_policy = request["req_policy"].native
        if requested_policy is not None and requested_policy != self._policy:
            raise BadTimestampRequest("unaccepted_policy", "requested policy is not served")
        clock = self._clock.status()
        if not clock.trusted:
            raise ClockNotTrusted(clock.reason)
        info = tsp.TSTInfo(
            {
                "version": "v1",
                "policy": self._policy,
                "message_imprint": request["message_imprint"],
                # 159 random bits: positive and unique without shared state between processes.
                "serial_number": secrets.randbits(159) | 1,
                "gen_time": dt.datetime.now(dt.UTC),
                "accuracy": tsp.Accuracy.load(self._accuracy_der),
                "tsa": x509.GeneralName.load(self._tsa_name_der),
            }
        )
        if request["nonce"].native is not None:
            info["nonce"] = request["nonce"].native
        if self._extensions_der is not None:
            info["extensions"] = tsp.Extensions.load(self._extensions_der)
        token = self._signer.sign(
            "tst_info",
            info.dump(),
            extra_signed=[],
            include_certificates=[self._signer.certificate_der] if request["cert_req"].native else [],
        )
        metrics.TIMESTAMPS.labels("granted").inc()
        return token

    def timestamp_digest(self, digest: bytes, algorithm: str = "sha256") -> cms.ContentInfo:
        """A token over a digest computed here (signature timestamps of seals)."""
        request = tsp.TimeStampReq(
            {
                "version": "v1",
                "message_imprint": {
                    "hash_algorithm": algos.DigestAlgorithm({"algorithm": algorithm}),
                    "hashed_message": digest,
                },
                "cert_req": True,
            }
        )
        return self.issue(request)

    def respond(self, request_der: bytes) -> bytes:
        """RFC 3161 answer to any bytes: never raises for bad input."""
        try:
            token = self.issue(self.parse(request_der))
        except BadTimestampRequest as exc:
            return _rejection(exc.fail_info, str(exc))
        except ClockNotTrusted as exc:
            return _rejection("time_not_available", str(exc))
        except (TokenUnavailable, SignerError) as exc:
            log.warning("timestamp refused", extra={"error_type": type(exc).__name__})
            return _rejection("system_failure", "the TSA cannot sign now")
        return granted(token)


def granted(token: cms.ContentInfo) -> bytes:
    return bytes(TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token}).dump())


def _rejection(fail_info: str, text: str) -> bytes:
    metrics.TIMESTAMPS.labels("rejection").inc()
    return bytes(
        TimeStampResp(
            {
                "status": {
                    "status": "rejection",
                    "status_string": [text],
                    "fail_info": tsp.PKIFailureInfo({fail_info}),
                }
            }
        ).dump()
    )
