"""Evidence seals: CAdES baseline B-T (ETSI EN 319 122-1).

B-B: CMS SignedData with content-type, message-digest, signing-time and
signing-certificate-v2 signed. B-T: a signature timestamp from our TSA over
the signature value, as the unsigned attribute id-aa-signatureTimeStampToken.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from cryptography import x509
from cryptography.hazmat import asn1

from lre.signer import metrics
from lre.signer import structures as s
from lre.signer.tsa import CmsSigner, TimestampAuthority


class EvidenceSealer:
    def __init__(
        self, signer: CmsSigner, tsa: TimestampAuthority, ca_chain: list[x509.Certificate]
    ) -> None:
        self._signer = signer
        self._tsa = tsa
        # Issuing CAs travel with the seal; the root is what a verifier must already trust.
        self._certificates = [signer.certificate, *(c for c in ca_chain if c.issuer != c.subject)]

    def seal(self, content: bytes) -> tuple[bytes, dt.datetime]:
        # UTCTime (RFC 5652 11.3 until 2049) holds whole seconds: rounded up, not
        # cut, so that the claimed signing time never precedes the sealed event.
        # The signature timestamp's genTime keeps the microseconds.
        now = dt.datetime.now(dt.UTC)
        signing_time = now.replace(microsecond=0) + dt.timedelta(seconds=bool(now.microsecond))

        def signature_timestamp(signature: bytes) -> list[s.Attribute]:
            token = self._tsa.timestamp_digest(hashlib.sha256(signature).digest())
            return [s.attribute(s.ID_SIGNATURE_TIME_STAMP_TOKEN, asn1.encode_der(token))]

        signed = self._signer.sign(
            s.ID_DATA,
            content,
            extra_signed=[
                s.attribute(s.ID_SIGNING_TIME, asn1.encode_der(asn1.UTCTime(signing_time)))
            ],
            certificates=self._certificates,
            unsigned=signature_timestamp,
        )
        metrics.SEALS.inc()
        return asn1.encode_der(signed), signing_time
