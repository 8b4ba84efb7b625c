"""Evidence seals: CAdES baseline B-LT (ETSI EN 319 122-1).

B-B: CMS SignedData with content-type, message-digest, signing-time and
signing-certificate-v2 signed. B-T: a signature timestamp from the configured TSA over
the signature value, as the unsigned attribute id-aa-signatureTimeStampToken.
B-LT: the validation data of both chains in the SignedData itself, the place
EN 319 122-1 (clause 6) gives baseline signatures for it: every
certificate of the seal and TSA chains, root included, in ``certificates``,
and the CAs' current CRLs in ``crls`` (RFC 5652 RevocationInfoChoices).
Neither field is signed, so adding them leaves the B-T signature as it is,
and every CMS verifier reads them (OpenSSL uses the CRLs with -crl_check).
The ETSI attributes certificate-values / revocation-values are for the
extended CAdES levels (EN 319 122-2), which baseline verifiers need not read.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from cryptography import x509
from cryptography.hazmat import asn1

from lre.runtime import structures as s
from lre.signer import metrics
from lre.signer.revocation import CrlFile, ProofOfValidity
from lre.signer.timesources import TimestampSources
from lre.signer.tsa import CmsSigner


class EvidenceSealer:
    def __init__(
        self,
        signer: CmsSigner,
        sources: TimestampSources,
        ca_chain: list[x509.Certificate],
        crls: CrlFile,
    ) -> None:
        self._signer = signer
        self._sources = sources
        self._validity = ProofOfValidity(crls, [[signer.certificate, *ca_chain], *sources.chains])
        # The root travels too (B-LT: the whole chain); a verifier still
        # anchors it in its own trust list, never in what the seal carries.
        # Every configured timestamp source's chain: whichever stamps.
        self._certificates = sources.certificates([signer.certificate, *ca_chain])

    def seal(self, content: bytes) -> tuple[bytes, dt.datetime]:
        """The seal and its signing time. Raises ValidationDataUnavailable when
        the CRLs cannot show both chains valid now: a seal without that proof
        would not verify once its certificates expire."""
        # UTCTime (RFC 5652 11.3 until 2049) holds whole seconds: cut, not rounded
        # up, so that the claimed signing time is never later than the signature
        # timestamp's genTime (taken after it, with its microseconds), the time
        # that proves when the seal existed. It may precede the sealed event's
        # recorded time by less than that second.
        now = dt.datetime.now(dt.UTC)
        signing_time = now.replace(microsecond=0)
        crls = self._validity.crls(now)

        def signature_timestamp(signature: bytes) -> list[s.Attribute]:
            token = self._sources.timestamp_digest(hashlib.sha256(signature).digest())
            return [s.attribute(s.ID_SIGNATURE_TIME_STAMP_TOKEN, token)]

        signed = self._signer.sign(
            s.ID_DATA,
            content,
            extra_signed=[
                s.attribute(s.ID_SIGNING_TIME, asn1.encode_der(asn1.UTCTime(signing_time)))
            ],
            certificates=self._certificates,
            unsigned=signature_timestamp,
            crls=crls,
        )
        metrics.SEALS.inc()
        return asn1.encode_der(signed), signing_time
