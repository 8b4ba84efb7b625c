"""Long-term archival level: CAdES B-LTA seals and PAdES B-LTA proofs.

A seal gets one more archive-time-stamp-v3 (``lre.runtime.archival``) over
everything it holds, after the validation data of the timestamps already
there; a PDF proof gets one more incremental revision with a document
timestamp over the whole file, the validation data of the signature or
timestamp before it in its DSS (pyHanko's ``PdfTimeStamper``). Each renewal
is made before the certificates the last timestamp relies on expire or its
algorithm's sunset: then the chain proves the evidence existed at its
signature timestamp's time however old every certificate gets.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass

from asn1crypto import cms, tsp
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.signers.pdf_signer import PdfTimeStamper
from pyhanko.sign.timestamps import HTTPTimeStamper, TimeStamper
from pyhanko_certvalidator import ValidationContext

from lre.runtime import archival
from lre.server.domain.errors import DependencyUnavailable

__all__ = ["SignerTimeStamper", "TimeStamper", "ValidationData", "archive_pdf", "archive_seal"]


class SignerTimeStamper(TimeStamper):
    """RFC 3161 tokens from the signer's own TSA, over its gRPC Timestamp call."""

    def __init__(self, timestamp: Callable[[bytes], bytes]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._timestamp = timestamp

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        # A worker's own loop, made for this one request: blocking it is harmless.
        reply = self._timestamp(req.dump())
        return tsp.TimeStampResp.load(reply)


def http_stamper(url: str, timeout_s: float) -> TimeStamper:
    """An external RFC 3161 TSA over HTTP (a qualified TSA the provider buys from)."""
    return HTTPTimeStamper(url, timeout=int(max(1, timeout_s)))


@dataclass(frozen=True)
class ValidationData:
    """What renewals add for the timestamps they rely on: the chains (DER)
    of every TSA that stamps, with their CAs, and the CAs' current CRLs."""

    certificates: tuple[bytes, ...]
    crls: tuple[bytes, ...]
    roots: tuple[bytes, ...]  # the trust anchors the TSA chains lead to
    # Revocation data fetched (CRL distribution points, OCSP responders)
    # where the certificates name them, beside the CRLs above; the DSS keeps
    # what was fetched.
    fetch: bool = True

    def context(self) -> ValidationContext:
        return ValidationContext(
            trust_roots=[asn1_x509.Certificate.load(c) for c in self.roots],
            other_certs=[asn1_x509.Certificate.load(c) for c in self.certificates],
            crls=[asn1_crl.CertificateList.load(c) for c in self.crls],
            allow_fetching=self.fetch,
            # A certificate naming a source that cannot answer is not taken
            # as unrevoked: the renewal waits (the worker retries).
            revocation_mode="hard-fail",
        )


def is_self_signed(der: bytes) -> bool:
    return bool(asn1_x509.Certificate.load(der).self_signed == "maybe")


def _token(stamper: TimeStamper, digest: bytes) -> bytes:
    try:
        token: cms.ContentInfo = asyncio.run(stamper.async_timestamp(digest, "sha256"))
    except (OSError, ValueError) as exc:
        raise DependencyUnavailable(f"the archive TSA gave no timestamp ({exc})") from None
    return bytes(token.dump())


def archive_seal(seal: bytes, stamper: TimeStamper, data: ValidationData) -> bytes:
    """``seal`` (B-LT, or B-LTA already) with one more archive timestamp."""
    return archival.extend(
        seal, lambda digest: _token(stamper, digest), list(data.certificates), list(data.crls)
    )


def archive_pdf(pdf: bytes, stamper: TimeStamper, data: ValidationData) -> bytes:
    """``pdf`` with one more revision: the validation data of its last
    signature or document timestamp in the DSS and a document timestamp
    over the whole file (PAdES B-LTA)."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    timestamper = PdfTimeStamper(stamper, field_name=_field_name(reader))
    context = data.context()
    try:
        if reader.embedded_timestamp_signatures:
            output = timestamper.update_archival_timestamp_chain(reader, context, in_place=False)
        else:
            # The first one: the signature's chains and CRLs are in the DSS
            # already (B-LT); the timestamp's own are added with it.
            output = timestamper.timestamp_pdf(
                IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False),
                "sha256",
                validation_context=context,
            )
    except (OSError, ValueError) as exc:
        raise DependencyUnavailable(f"the archive TSA gave no timestamp ({exc})") from None
    return bytes(output.getvalue())


def _field_name(reader: PdfFileReader) -> str:
    return f"ArchiveTimestamp{len(reader.embedded_timestamp_signatures) + 1}"


def covered_until(seal: bytes, sunset: dt.datetime | None) -> dt.datetime:
    """Until when the seal's last timestamp (its archive timestamp, or its
    signature timestamp) proves what it covers: the earliest expiry of that
    timestamp's certificate and its CAs, or the algorithm's sunset if earlier."""
    stamps = archival.stamps(seal)
    token = stamps[-1].token if stamps else _signature_timestamp(seal)
    available = [*archival.seal_certificates(seal), *_token_certificates(token)]
    signer = _token_signer(token, available)
    chain = _chain(signer, available)
    until: dt.datetime = min(c["tbs_certificate"]["validity"]["not_after"].native for c in chain)
    return min(until, sunset) if sunset else until


def _signature_timestamp(seal: bytes) -> cms.ContentInfo:
    signer_info = cms.ContentInfo.load(seal)["content"]["signer_infos"][0]
    for attr in signer_info["unsigned_attrs"] or []:
        if attr["type"].native == "signature_time_stamp_token":
            return attr["values"][0]
    raise ValueError("the seal has no signature timestamp")


def _token_certificates(token: cms.ContentInfo) -> list[asn1_x509.Certificate]:
    return [c.chosen for c in token["content"]["certificates"] or [] if c.name == "certificate"]


def _token_signer(
    token: cms.ContentInfo, certificates: list[asn1_x509.Certificate]
) -> asn1_x509.Certificate:
    sid = token["content"]["signer_infos"][0]["sid"].chosen
    for c in certificates:
        if c.issuer == sid["issuer"] and c.serial_number == sid["serial_number"].native:
            return c
    raise ValueError("the timestamp's certificate is not in the seal")


def _chain(
    leaf: asn1_x509.Certificate, certificates: list[asn1_x509.Certificate]
) -> list[asn1_x509.Certificate]:
    chain = [leaf]
    while chain[-1].self_signed == "no" and len(chain) < 8:
        issuer = next((c for c in certificates if c.subject == chain[-1].issuer), None)
        if issuer is None:
            break
        chain.append(issuer)
    return chain
