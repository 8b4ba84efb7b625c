"""The long-term checks: the chain of timestamps of the evidence seal
(CAdES B-LTA, ``evidence-archive.p7m``) and of the PDF proof (PAdES B-LTA
document timestamps), the instant each is proven to have existed, and the
provider's keys declared compromised (``lre.runtime.longterm``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io

from asn1crypto import cms as asn1_cms
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import DocumentSecurityStore, validate_pdf_timestamp
from pyhanko.sign.validation.errors import NoDSSFoundError
from pyhanko.sign.validation.status import SignatureCoverageLevel

from lre.runtime import archival, longterm
from lre.runtime import bundle_layout as layout
from lre.verify import chains, cms, pdf
from lre.verify.checks import Bundle, check
from lre.verify.cms import SealProblem
from lre.verify.pdf import AFTER_SIGNING
from lre.verify.provider import Provider
from lre.verify.report import Report


def sha256_hex(certificate: asn1_x509.Certificate) -> str:
    return hashlib.sha256(certificate.dump()).hexdigest()


def link(
    stamp: cms.Timestamp,
    others: list[asn1_x509.Certificate],
    trusted: list[asn1_x509.Certificate],
    crls: list[asn1_crl.CertificateList],
) -> longterm.Link:
    """One timestamp as a link: its path (valid at its own time) to an anchor,
    when the first certificate of it expires, and when one was revoked."""
    path = chains.anchor(stamp.tsa, others, trusted, stamp.time, "time_stamping")
    expires = min(c["tbs_certificate"]["validity"]["not_after"].native for c in path.certificates)
    revoked = [
        r["revocation_date"].native
        for c in crls
        for r in c["tbs_cert_list"]["revoked_certificates"] or []
        for cert in path.certificates[1:]
        if c.issuer == cert.issuer and r["user_certificate"].native == cert.serial_number
    ]
    return longterm.Link(
        stamp.time,
        sha256_hex(stamp.tsa),
        str(stamp.tsa.subject.native.get("common_name", stamp.tsa.subject.human_friendly)),
        expires,
        min(revoked) if revoked else None,
    )


def seal_links(
    original: bytes,
    archived: bytes | None,
    others: list[asn1_x509.Certificate],
    trusted: list[asn1_x509.Certificate],
    crls: list[asn1_crl.CertificateList],
) -> tuple[asn1_x509.Certificate, list[longterm.Link]]:
    """The seal's signer and its timestamps, the archive ones from
    ``archived`` (the same seal extended) when given."""
    seal = cms.load(archived or original)
    if archived is not None and not archival.same_signature(original, archived):
        raise SealProblem("the archived seal is not the evidence's seal extended")
    certificates = [*seal.certificates, *others]
    signer = cms.check_signature(seal, certificates)
    all_crls = [*crls, *(asn1_crl.CertificateList.load(c) for c in seal.crls)]
    first = cms.check_timestamp(seal, certificates)
    links = [link(first, [*first.certificates, *certificates], trusted, all_crls)]
    try:
        stamps = archival.stamps(archived) if archived else []
    except archival.ArchiveProblem as exc:
        raise SealProblem(str(exc)) from None
    for n, stamp in enumerate(stamps, 1):
        try:
            token = cms.check_token(stamp.token, None, certificates)
        except SealProblem as exc:
            raise SealProblem(f"archive timestamp {n}: {exc}") from None
        links.append(link(token, [*token.certificates, *certificates], trusted, all_crls))
    return signer, links


def pdf_links(
    pdf: bytes,
    signature_tsa: cms.Timestamp,
    trusted: list[asn1_x509.Certificate],
    roots: list[asn1_x509.Certificate],
) -> list[longterm.Link]:
    """The PDF signature's timestamp, then each document timestamp, each
    intact and valid (pyHanko), the last covering the whole file."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except NoDSSFoundError:
        raise SealProblem("no DSS: the PDF carries no validation data") from None
    certificates = list(dss.load_certs())
    crls = [asn1_crl.CertificateList.load(ref.get_object().data) for ref in dss.crls]
    anchors = trusted or roots
    links = [link(signature_tsa, [*signature_tsa.certificates, *certificates], anchors, crls)]
    timestamps = reader.embedded_timestamp_signatures
    for n, stamp in enumerate(timestamps, 1):
        context = dss.as_validation_context(
            {"trust_roots": anchors, "allow_fetching": False, "revocation_mode": "soft-fail"}
        )
        status = validate_pdf_timestamp(
            stamp, validation_context=context, diff_policy=AFTER_SIGNING
        )
        if not (status.intact and status.valid):
            raise SealProblem(f"document timestamp {n} does not verify")
        if n == len(timestamps) and not (
            status.coverage == SignatureCoverageLevel.ENTIRE_FILE
            or (
                status.modification_level is not None
                and status.modification_level <= ModificationLevel.LTA_UPDATES
            )
        ):
            raise SealProblem(
                "the PDF was changed after its last document timestamp (more than validation data)"
            )
        token = cms.check_token(
            asn1_cms.ContentInfo({"content_type": "signed_data", "content": stamp.signed_data}),
            None,
            certificates,
        )
        links.append(link(token, [*token.certificates, *certificates], anchors, crls))
    return links


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def check_longterm(
    report: Report,
    bundle: Bundle,
    chains_: list[list[asn1_x509.Certificate]],
    crls: list[asn1_crl.CertificateList],
    anchors: list[asn1_x509.Certificate],
    signature: pdf.PdfSignature | None,
    compromised: dict[str, longterm.Compromise],
    provider: Provider | None,
) -> None:
    """Until when the evidence seal and the PDF proof are proven, each a check;
    with ``provider``, every archive or document timestamp by a TSA it declared."""
    others = [c for chain in chains_ for c in chain]
    when = now()
    with check(report, "evidence seal: archive timestamps") as ok:
        archived = bundle.members.get(layout.EVIDENCE_ARCHIVE_SEAL)
        signer, links = seal_links(bundle[layout.EVIDENCE_SEAL], archived, others, anchors, crls)
        _declared(links, provider)
        verdict = longterm.assess(sha256_hex(signer), links, when, compromised)
        if verdict.problem:
            raise SealProblem(f"{verdict.problem} ({verdict.detail})")
        ok(verdict.detail)
    with check(report, "tree head seal: keys") as ok:
        # The head proves the evidence is in the log: sealed with a key
        # declared compromised before, it proves nothing.
        signer, links = seal_links(bundle[layout.TREE_HEAD_SEAL], None, others, anchors, crls)
        problem = longterm.compromise(sha256_hex(signer), links, compromised)
        if problem:
            raise SealProblem(problem)
        ok(f"sealed at {links[0].time:%Y-%m-%dT%H:%M:%SZ}, no key declared compromised before")
    with check(report, "proof PDF: document timestamps") as ok:
        if signature is None:
            raise SealProblem("the PDF's signature did not verify")
        links = pdf_links(bundle[layout.PROOF_PDF], signature.timestamp, anchors, anchors)
        _declared(links, provider)
        verdict = longterm.assess(sha256_hex(signature.certificate), links, when, compromised)
        if verdict.problem:
            raise SealProblem(f"{verdict.problem} ({verdict.detail})")
        ok(verdict.detail)


def _declared(links: list[longterm.Link], provider: Provider | None) -> None:
    """The signature timestamp and every archive timestamp are the provider's."""
    for n, stamp in enumerate(links):
        if provider is not None and bytes.fromhex(stamp.key) not in provider.tsas:
            which = f"archive timestamp {n}" if n else "the signature timestamp"
            raise SealProblem(
                f"{which} is by {stamp.name}, which is not a timestamp authority"
                " the provider declared"
            )
