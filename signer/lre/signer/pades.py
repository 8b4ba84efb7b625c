"""PDF signatures of whole PDFs (``SignPdf``, deprecated): PAdES baseline B-LT
(ETSI EN 319 142-1) with the seal key. The server now assembles proofs itself
and has only their digest signed (lre.signer.pdf_digest); this stays for
servers not yet moved to it.

pyHanko builds the PDF structures; what needs a key goes to the token: the
signature value through ``TokenSigner``, the signature timestamp through
this process's own TSA (``InProcessTimeStamper``), never over the network.
B-LT: after the signature, a DSS (Document Security Store) with the chains
of the seal and TSA certificates and the CAs' CRLs, read offline from
``crl_file``, so that the PDF still verifies once they expire.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

from asn1crypto import algos, cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign import fields, signers, timestamps
from pyhanko.sign.general import SigningError
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import ValidationError
from pyhanko_certvalidator.registry import SimpleCertificateStore

from lre.runtime import asn1crypto_fix
from lre.signer import metrics
from lre.signer.errors import BadPdf, ValidationDataUnavailable
from lre.signer.revocation import CrlFile
from lre.signer.timesources import TimestampSources
from lre.signer.token import Token

asn1crypto_fix.apply()
log = logging.getLogger("lre.signer.pades")

FIELD_NAME = "ProviderSeal"
# Room for the CMS in /Contents: signature, chain and timestamp token with its
# certificate fit in well under this; a fixed size spares an estimating pass.
_SIGNATURE_BYTES = 12_000
# DER ECDSA-Sig-Value over P-256 is at most 72 bytes.
_DUMMY_SIGNATURE = bytes(72)


class _OfflineByDesign(logging.Filter):
    """pyHanko warns at every signature that it may not fetch revocation data:
    here that is the point (CRLs come from ``crl_file``), not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "fetching is not allowed" not in record.getMessage()


logging.getLogger("pyhanko.sign.signers.pdf_signer").addFilter(_OfflineByDesign())


class TokenSigner(signers.Signer):
    """A pyHanko signer whose private key stays on the token."""

    def __init__(
        self,
        token: Token,
        key_label: str,
        certificate: asn1_x509.Certificate,
        chain: list[asn1_x509.Certificate],
    ) -> None:
        super().__init__(
            signing_cert=certificate,
            cert_registry=SimpleCertificateStore.from_certs([certificate, *chain]),  # type: ignore[no-untyped-call]
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
            # The root is what a verifier must already trust.
            embed_roots=False,
        )
        self._token = token
        self._key_label = key_label

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        if dry_run:
            return _DUMMY_SIGNATURE
        if digest_algorithm != "sha256":
            raise ValueError(f"the seal key signs SHA-256 digests, not {digest_algorithm}")
        return self._token.sign_digest(self._key_label, hashlib.sha256(data).digest())


class InProcessTimeStamper(timestamps.TimeStamper):
    """Signature timestamps from the configured sources (signer.timesources):
    the built-in TSA in this process, or an external one, with fallback."""

    def __init__(self, sources: TimestampSources) -> None:
        super().__init__(include_nonce=True)  # type: ignore[no-untyped-call]
        self._sources = sources

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> cms.ContentInfo:
        if md_algorithm != "sha256":
            raise ValueError(f"signature timestamps are over SHA-256, not {md_algorithm}")
        # ClockNotTrusted (no source could stamp) and token failures propagate as themselves.
        return cms.ContentInfo.load(self._sources.timestamp_digest(message_digest))

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        # pyHanko's TimeStamper asks this only from its own async_timestamp,
        # which this class replaces: the tokens come from the configured sources.
        raise NotImplementedError("timestamps come from async_timestamp")


class PadesSigner:
    def __init__(
        self,
        token: Token,
        key_label: str,
        certificate_der: bytes,
        ca_chain: list[x509.Certificate],
        sources: TimestampSources,
        crl_file: Path,
    ) -> None:
        ders = [
            c.public_bytes(serialization.Encoding.DER)
            for c in sources.certificates(ca_chain)
            if _is_ca(c)
        ]
        self._cas = [asn1_x509.Certificate.load(d) for d in ders]
        self._roots = [c for c in self._cas if c.self_signed == "maybe"]
        self._signer = TokenSigner(
            token, key_label, asn1_x509.Certificate.load(certificate_der), self._cas
        )
        self._timestamper = InProcessTimeStamper(sources)
        self._crls = CrlFile(crl_file)

    def sign(self, pdf: bytes) -> bytes:
        """The PDF with two more revisions: the signature, then its validation data.

        Raises BadPdf for bytes that are not a PDF pyHanko can append to, and
        ValidationDataUnavailable when the chains cannot be shown valid now.
        """
        if not pdf.startswith(b"%PDF-"):
            raise BadPdf("not a PDF: it must start with %PDF-")
        try:
            writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        except (PdfError, ValueError, KeyError, IndexError) as exc:
            raise BadPdf(f"not a readable PDF: {type(exc).__name__}") from None
        if writer.prev.encrypted:
            raise BadPdf("encrypted PDFs are not signed")
        try:
            crls = self._crls.current()
        except (OSError, ValueError) as exc:
            log.warning("CRLs not readable", extra={"error_type": type(exc).__name__})
            raise ValidationDataUnavailable("the CAs' CRLs cannot be read") from None
        validation = ValidationContext(
            trust_roots=self._roots,
            other_certs=self._cas,
            crls=crls,
            allow_fetching=False,
            revocation_mode="require",
        )
        meta = signers.PdfSignatureMetadata(
            field_name=FIELD_NAME,
            md_algorithm="sha256",
            subfilter=fields.SigSeedSubFilter.PADES,
            embed_validation_info=True,
            validation_context=validation,
        )
        out = io.BytesIO()
        try:
            signers.PdfSigner(meta, self._signer, timestamper=self._timestamper).sign_pdf(
                writer, output=out, bytes_reserved=_SIGNATURE_BYTES
            )
        except SigningError as exc:
            # pyHanko validates both chains before it embeds their validation data.
            if isinstance(exc.__cause__, ValidationError):
                log.warning("seal or TSA chain not valid now", extra={"reason": str(exc.__cause__)})
                raise ValidationDataUnavailable(str(exc.__cause__)) from None
            raise BadPdf(f"cannot be signed: {exc}") from None
        except (PdfError, KeyError, IndexError) as exc:
            # A structure pyHanko reads only while signing (pages, forms).
            raise BadPdf(f"not a readable PDF: {type(exc).__name__}") from None
        metrics.PDF_SIGNATURES.inc()
        return out.getvalue()


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False
