"""The long-term pass of `verify-log` over PDF proofs: every renewed PDF
proof (PAdES B-LTA) checked as renewed seals are (``archived``).

A renewed PDF must be the stored proof extended (its bytes first, then
incremental revisions only), hold one signature and at most as many document
timestamps as the seal's renewals (a proof made after a renewal starts later),
each intact (pyHanko: its digest over the byte range it covers) and by a
declared TSA chaining to the anchors, the last covering the whole file or
followed by validation data only. Then the chain of timestamps, from the
signature's own, must hold now and no key declared compromised may have made
what it relies on (``lre.runtime.longterm``), as for seals.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import DocumentSecurityStore, validate_pdf_timestamp
from pyhanko.sign.validation.errors import NoDSSFoundError
from pyhanko.sign.validation.status import SignatureCoverageLevel
from sqlalchemy import Connection, select

from lre.runtime import longterm
from lre.server.audit.archived import link
from lre.server.audit.reading import Report
from lre.server.audit.seals import SealChecker
from lre.server.storage import models
from lre.server.storage.archive import latest_pdf_column, latest_version_column
from lre.server.storage.records import table

EVIDENCE = table(models.Evidence)
PROOFS = table(models.EvidenceProof)


def check(
    connection: Connection,
    report: Report,
    seals: SealChecker | None,
    compromised: dict[str, longterm.Compromise],
    now: dt.datetime,
) -> None:
    renewed = latest_pdf_column().label("renewed")
    query = (
        select(
            EVIDENCE.c.id,
            PROOFS.c.pdf,
            renewed,
            latest_version_column().label("version"),
        )
        .join(PROOFS, PROOFS.c.evidence_id == EVIDENCE.c.id)
        .order_by(EVIDENCE.c.id)
    )
    # pyHanko checks each document timestamp's digest (not its trust: the
    # seal checker does); given the anchors, it builds no path elsewhere.
    anchors = (
        [asn1_x509.Certificate.load(der) for der in seals.anchor_certificates()] if seals else []
    )
    count, stale = 0, 0
    for row in connection.execute(query).yield_per(100):
        if row.renewed is None:
            stale += 1  # B-LT until the worker's next step gives it a document timestamp
            continue
        try:
            problem = pdf_problem(
                row.pdf, row.renewed, (row.version, anchors), seals, compromised, now
            )
        except (PdfError, ValueError, KeyError, TypeError) as exc:
            # pyHanko's reading errors derive from Exception only: one damaged
            # PDF is a finding, not the end of the run.
            problem = f"cannot be read ({type(exc).__name__})"
        if problem:
            report.add(f"evidence {row.id}: its renewed PDF proof {problem}")
        else:
            count += 1
    report.notes.append(
        f"{count} renewed PDF proofs (B-LTA) checked; {stale} stored proofs without a"
        " document timestamp yet"
    )


def pdf_problem(
    original: bytes,
    renewed: bytes,
    renewals: tuple[int, list[asn1_x509.Certificate]],
    seals: SealChecker | None,
    compromised: dict[str, longterm.Compromise],
    now: dt.datetime,
) -> str | None:
    """Why the renewed PDF no longer proves its proof, or None; ``renewals``:
    how many times the seal was renewed, and the anchors."""
    version, anchors = renewals
    if not renewed.startswith(original) or len(renewed) == len(original):
        return "is not its stored proof extended"
    reader = PdfFileReader(io.BytesIO(renewed), strict=False)
    signatures, stamps = reader.embedded_regular_signatures, reader.embedded_timestamp_signatures
    if len(signatures) != 1:
        return f"holds {len(signatures)} signatures"
    if not 1 <= len(stamps) <= version:
        return f"holds {len(stamps)} document timestamps for {version} renewals"
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except NoDSSFoundError:
        return "carries no validation data (no DSS)"
    pool = [*dss.load_certs()]
    others = [x509.load_der_x509_certificate(c.dump()) for c in pool]
    signer_info = signatures[0].signed_data["signer_infos"][0]
    tokens = [
        attr["values"][0]
        for attr in signer_info["unsigned_attrs"] or []
        if attr["type"].native == "signature_time_stamp_token"
    ]
    if len(tokens) != 1:
        return "has no signature timestamp"
    links = [link(tokens[0], pool)]
    for n, stamp in enumerate(stamps, 1):
        status = validate_pdf_timestamp(
            stamp,
            validation_context=dss.as_validation_context(
                {"trust_roots": anchors, "allow_fetching": False, "revocation_mode": "soft-fail"}
            ),
        )
        if not status.intact:
            return f"has document timestamp {n} over other bytes than it covers"
        last = n == len(stamps)
        level = status.modification_level
        if (
            last
            and status.coverage != SignatureCoverageLevel.ENTIRE_FILE
            and not (level is not None and level <= ModificationLevel.LTA_UPDATES)
        ):
            return "was changed after its last document timestamp (more than validation data)"
        token = cms.ContentInfo({"content_type": "signed_data", "content": stamp.signed_data})
        if seals is not None:
            why = seals.timestamp(token.dump(), None, others)
            if why:
                return f"document timestamp {n} {why}"
        links.append(link(token, pool))
    signer = hashlib.sha256(signatures[0].signer_cert.dump()).hexdigest()
    verdict = longterm.assess(signer, links, now, compromised)
    return verdict.problem
