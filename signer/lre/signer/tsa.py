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

from cryptography import x509
from cryptography.hazmat import asn1

from lre.runtime import structures as s
from lre.signer import metrics
from lre.signer.clock import ClockCheck
from lre.signer.errors import BadTimestampRequest, ClockNotTrusted, SignerError
from lre.signer.token import Token

log = logging.getLogger("lre.signer.tsa")

DIGEST_LENGTHS = {s.SHA256: 32, s.SHA384: 48, s.SHA512: 64}
# The longest nonce served: 64-bit nonces are usual, 160 bits the longest seen.
NONCE_BITS = 256
# PKIFailureInfo named bits (RFC 3161 2.4.2).
FAIL_INFO_BITS = {
    "bad_alg": 0,
    "bad_request": 2,
    "bad_data_format": 5,
    "time_not_available": 14,
    "unaccepted_policy": 15,
    "unaccepted_extensions": 16,
    "system_failure": 25,
}
GRANTED, REJECTION = 0, 2


class CmsSigner:
    """Signs CMS SignedData with one token key; shared by the TSA and the sealer."""

    def __init__(self, token: Token, key_label: str, certificate_der: bytes) -> None:
        self.token = token
        self.key_label = key_label
        self.certificate = x509.load_der_x509_certificate(certificate_der)
        self._sid = s.IssuerAndSerialNumber(
            issuer=s.tlv(self.certificate.issuer.public_bytes()),
            serial_number=self.certificate.serial_number,
        )
        self._signing_certificate_v2 = s.attribute(
            s.ID_SIGNING_CERTIFICATE_V2,
            asn1.encode_der(
                s.SigningCertificateV2(
                    certs=[s.ESSCertIDv2(cert_hash=hashlib.sha256(certificate_der).digest())]
                )
            ),
        )

    def sign(
        self,
        content_type: x509.ObjectIdentifier,
        content: bytes,
        extra_signed: list[s.Attribute],
        certificates: list[x509.Certificate],
        unsigned: Callable[[bytes], list[s.Attribute]] | None = None,
        crls: list[bytes] | None = None,
    ) -> s.ContentInfo:
        """SignedData encapsulating ``content``; ``unsigned`` builds the unsigned
        attributes from the signature value (CAdES signature timestamps);
        ``crls`` (DER CertificateLists) go in the unsigned ``crls`` field."""
        return self._signed_data(
            content_type,
            content,
            hashlib.sha256(content).digest(),
            extra_signed,
            certificates,
            unsigned,
            crls,
        )

    def sign_detached(
        self,
        digest: bytes,
        certificates: list[x509.Certificate],
        unsigned: Callable[[bytes], list[s.Attribute]] | None = None,
    ) -> s.ContentInfo:
        """SignedData over data of SHA-256 ``digest`` that it does not carry
        (id-data, as PAdES signs a PDF's byte ranges): the data never reaches
        the signer, only its digest."""
        return self._signed_data(s.ID_DATA, None, digest, [], certificates, unsigned, None)

    def _signed_data(
        self,
        content_type: x509.ObjectIdentifier,
        content: bytes | None,
        digest: bytes,
        extra_signed: list[s.Attribute],
        certificates: list[x509.Certificate],
        unsigned: Callable[[bytes], list[s.Attribute]] | None,
        crls: list[bytes] | None,
    ) -> s.ContentInfo:
        signed_attrs = asn1.SetOf(
            [
                s.attribute(s.ID_CONTENT_TYPE, asn1.encode_der(content_type)),
                s.attribute(s.ID_MESSAGE_DIGEST, asn1.encode_der(digest)),
                *extra_signed,
                self._signing_certificate_v2,
            ]
        )
        # RFC 5652 5.4: the signature covers the DER of the SET OF attributes.
        signature = self.token.sign_digest(
            self.key_label, hashlib.sha256(asn1.encode_der(signed_attrs)).digest()
        )
        signer_info = s.SignerInfo(
            version=1,
            sid=self._sid,
            digest_algorithm=s.algorithm(s.SHA256),
            signed_attrs=signed_attrs,
            signature_algorithm=s.algorithm(s.ECDSA_WITH_SHA256),
            signature=signature,
            unsigned_attrs=asn1.SetOf(unsigned(signature)) if unsigned is not None else None,
        )
        return s.ContentInfo(
            content_type=s.ID_SIGNED_DATA,
            content=s.SignedData(
                version=3,
                digest_algorithms=asn1.SetOf([s.algorithm(s.SHA256)]),
                encap_content_info=s.EncapsulatedContentInfo(
                    content_type=content_type, content=content
                ),
                certificates=asn1.SetOf(certificates) if certificates else None,
                crls=asn1.SetOf([s.tlv(c) for c in crls]) if crls else None,
                signer_infos=asn1.SetOf([signer_info]),
            ),
        )


class TimestampAuthority:
    def __init__(
        self,
        signer: CmsSigner,
        clock: ClockCheck,
        policy_oid: str,
        accuracy_ms: int,
        qualified: bool,
    ) -> None:
        self._signer = signer
        self._clock = clock
        self._policy = x509.ObjectIdentifier(policy_oid)
        if not 0 < accuracy_ms <= 1000:
            # ETSI EN 319 421 7.7.2: time within 1 s of UTC.
            raise ValueError("tsa_accuracy_ms must be between 1 and 1000")
        seconds, millis = divmod(accuracy_ms, 1000)
        self._accuracy = s.Accuracy(seconds=seconds or None, millis=millis or None, micros=None)
        self._tsa_name = s.tlv(
            s.unwrap(
                s.DirectoryNameHolder(
                    directory_name=s.tlv(signer.certificate.subject.public_bytes())
                )
            )
        )
        self._extensions = (
            [
                s.Extension(
                    extn_id=s.ID_QC_STATEMENTS,
                    critical=False,
                    extn_value=s.unwrap(
                        s.QcStatementsHolder(
                            statements=[s.QcStatement(statement_id=s.ESI4_QTST_STATEMENT_1)]
                        )
                    ),
                )
            ]
            if qualified
            else None
        )

    @property
    def certificate(self) -> x509.Certificate:
        return self._signer.certificate

    @staticmethod
    def parse(request_der: bytes) -> s.TimeStampReq:
        """Decodes and checks a TimeStampReq, or raises BadTimestampRequest."""
        try:
            request = asn1.decode_der(s.TimeStampReq, request_der)
        except ValueError as exc:
            raise BadTimestampRequest("bad_data_format", "not a DER TimeStampReq") from exc
        if request.version != 1:
            raise BadTimestampRequest("bad_request", "version must be 1")
        algorithm = request.message_imprint.hash_algorithm.algorithm
        if algorithm not in DIGEST_LENGTHS:
            raise BadTimestampRequest(
                "bad_alg", f"hash algorithm {algorithm.dotted_string} not accepted"
            )
        if len(request.message_imprint.hashed_message) != DIGEST_LENGTHS[algorithm]:
            raise BadTimestampRequest(
                "bad_data_format", "digest length does not match its algorithm"
            )
        if request.extensions:
            raise BadTimestampRequest("unaccepted_extensions", "no request extension is supported")
        if request.nonce is not None and abs(request.nonce).bit_length() > NONCE_BITS:
            # Echoed in every token it gets: a nonce is a random number
            # (RFC 3161 2.4.1: "e.g. a 64 bit integer"), not a payload.
            raise BadTimestampRequest("bad_request", f"nonce longer than {NONCE_BITS} bits")
        return request

    def issue(self, request: s.TimeStampReq) -> s.ContentInfo:
        """A timestamp token for a parsed request."""
        if request.req_policy is not None and request.req_policy != self._policy:
            raise BadTimestampRequest("unaccepted_policy", "requested policy is not served")
        clock = self._clock.status()
        if not clock.trusted:
            raise ClockNotTrusted(clock.reason)
        info = s.TSTInfo(
            version=1,
            policy=self._policy,
            message_imprint=request.message_imprint,
            # 159 random bits: positive and unique without shared state between processes.
            serial_number=secrets.randbits(159) | 1,
            gen_time=asn1.GeneralizedTime(dt.datetime.now(dt.UTC)),
            accuracy=self._accuracy,
            ordering=False,
            nonce=request.nonce,
            tsa=self._tsa_name,
            extensions=self._extensions,
        )
        token = self._signer.sign(
            s.ID_CT_TST_INFO,
            asn1.encode_der(info),
            extra_signed=[],
            certificates=[self._signer.certificate] if request.cert_req else [],
        )
        metrics.TIMESTAMPS.labels("granted").inc()
        return token

    def timestamp_digest(self, digest: bytes) -> s.ContentInfo:
        """A token over a SHA-256 digest computed here (signature timestamps of seals)."""
        request = s.TimeStampReq(
            version=1,
            message_imprint=s.MessageImprint(
                hash_algorithm=s.algorithm(s.SHA256), hashed_message=digest
            ),
            req_policy=None,
            nonce=None,
            cert_req=True,
            extensions=None,
        )
        return self.issue(request)

    def respond(self, request_der: bytes) -> bytes:
        """RFC 3161 answer to any bytes: never raises for bad input."""
        try:
            token = self.issue(self.parse(request_der))
        except BadTimestampRequest as exc:
            return rejection(exc.fail_info, str(exc))
        except ClockNotTrusted as exc:
            return rejection("time_not_available", str(exc))
        except SignerError as exc:
            log.warning("timestamp refused", extra={"error_type": type(exc).__name__})
            return rejection("system_failure", "the TSA cannot sign now")
        return granted(token)


def granted(token: s.ContentInfo) -> bytes:
    status = s.PKIStatusInfo(status=GRANTED, status_string=None, fail_info=None)
    return asn1.encode_der(s.TimeStampResp(status=status, time_stamp_token=token))


def rejection(fail_info: str, text: str) -> bytes:
    metrics.TIMESTAMPS.labels("rejection").inc()
    bit = FAIL_INFO_BITS[fail_info]
    # A named-bit BIT STRING in DER ends at its last set bit.
    data = bytearray(bit // 8 + 1)
    data[bit // 8] = 0x80 >> (bit % 8)
    status = s.PKIStatusInfo(
        status=REJECTION,
        status_string=[text],
        fail_info=asn1.BitString(bytes(data), 7 - bit % 8),
    )
    return asn1.encode_der(s.TimeStampResp(status=status, time_stamp_token=None))
