"""Evidence seals: CAdES baseline B-T (ETSI EN 319 122-1).

B-B: CMS SignedData with content-type, message-digest, signing-time and
signing-certificate-v2 signed. B-T: a signature timestamp from our TSA over
the signature value, as the unsigned attribute id-aa-signatureTimeStampToken.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from asn1crypto import cms, x509

from signer import metrics
from signer.tsa import SignedDataBuilder, TimestampAuthority


class EvidenceSealer:
    def __init__(
        self, signer: SignedDataBuilder, tsa: TimestampAuthority, ca_chain: list[x509.Certificate]
    ) -> None:
        self._signer = signer
        self._tsa = tsa
        # Issuing CAs travel with the seal; the root is what a verifier must already trust.
        self._certificates = [
            signer.certificate_der,
            *(bytes(c.dump()) for c in ca_chain if c.self_signed == "no"),
        ]

    def seal(self, content: bytes) -> tuple[bytes, dt.datetime]:
        signing_time = dt.datetime.now(dt.UTC).replace(microsecond=0)

        def signature_timestamp(signature: bytes) -> list[cms.CMSAttribute]:
            token = self._tsa.timestamp_digest(hashlib.sha256(signature).digest())
            return [cms.CMSAttribute({"type": "signature_time_stamp_token", "values": [token]})]

        signed = self._signer.sign(
            "data",
            content,
            extra_signed=[cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": signing_time})]})],
            include_certificates=self._certificates,
            unsigned=signature_timestamp,
        )
        metrics.SEALS.inc()
        return bytes(signed.dump()), signing_time
