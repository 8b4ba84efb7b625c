"""PAdES signatures over a digest: the server lays out the PDF, the signer signs.

The server assembles the whole signed revision (the signature dictionary and,
beside it, the DSS with the validation data below) and asks for a CMS
signature over the SHA-256 digest of its byte ranges; the PDF never reaches
the signer. What needs the token is done here: the signature value with the
seal key and the signature timestamp from the configured timestamp source (PAdES B-T).
The CMS is PAdES baseline (ETSI EN 319 142-1, ETSI.CAdES.detached): content
type, message digest and signing-certificate-v2 signed, no signing-time (the
claimed time is the signature dictionary's /M), the seal certificate and its
CAs (not the root, which a verifier must already trust) in ``certificates``.

The validation data is the same for every proof: the certificates of both
chains and the CAs' current CRLs, computed again only when the CRL file
changes or a CRL it used expires (``ProofOfValidity``). Its identifier (a
digest of it) travels with each request, so a signature is only made over a
PDF carrying the data that is current here: a PDF assembled with an older
one is refused (StaleValidationData) and the server fetches the new data.
A caller who may ask for this signature may also have any content sealed
(SealEvidence): signing a digest gives it nothing more.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import serialization

from lre.runtime import structures as s
from lre.signer import metrics
from lre.signer.errors import StaleValidationData
from lre.signer.revocation import CrlFile, ProofOfValidity
from lre.signer.timesources import TimestampSources
from lre.signer.tsa import CmsSigner

DIGEST_BYTES = 32  # SHA-256, the only digest the seal key signs


@dataclass(frozen=True)
class ValidationData:
    """What a PAdES B-LT proof carries in its DSS, and its identifier."""

    certificates: tuple[bytes, ...]  # DER: the seal's and its CAs', then each TSA's chain
    crls: tuple[bytes, ...]  # DER
    id: bytes


class PdfDigestSigner:
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
        # Every configured timestamp source's chain: the DSS is laid out
        # before the signature, so before it is known which source stamps.
        self._certificates = tuple(
            c.public_bytes(serialization.Encoding.DER)
            for c in sources.certificates([signer.certificate, *ca_chain])
        )
        self._in_cms = [signer.certificate, *(c for c in ca_chain if c.issuer != c.subject)]
        self._current: ValidationData | None = None

    def validation_data(self) -> ValidationData:
        """The current validation data. Raises ValidationDataUnavailable when
        the CRLs cannot show both chains valid now."""
        crls = tuple(self._validity.crls(dt.datetime.now(dt.UTC)))
        current = self._current
        if current is None or current.crls != crls:
            digest = hashlib.sha256()
            for der in (*self._certificates, b"", *crls):
                digest.update(len(der).to_bytes(4, "big") + der)
            current = self._current = ValidationData(self._certificates, crls, digest.digest())
        return current

    def sign(self, document_digest: bytes, validation_data_id: bytes) -> bytes:
        """The DER CMS SignedData to put in the signature dictionary's /Contents.

        Raises StaleValidationData when ``validation_data_id`` is not the
        current validation data's, ValidationDataUnavailable when there is
        none, ClockNotTrusted when the TSA may not stamp."""
        if len(document_digest) != DIGEST_BYTES:
            raise ValueError(f"the document digest must be SHA-256 ({DIGEST_BYTES} bytes)")
        if validation_data_id != self.validation_data().id:
            raise StaleValidationData("the PDF carries validation data that is not current")

        def signature_timestamp(signature: bytes) -> list[s.Attribute]:
            token = self._sources.timestamp_digest(hashlib.sha256(signature).digest())
            return [s.attribute(s.ID_SIGNATURE_TIME_STAMP_TOKEN, token)]

        signed = self._signer.sign_detached(document_digest, self._in_cms, signature_timestamp)
        metrics.PDF_SIGNATURES.inc()
        return asn1.encode_der(signed)
