"""The long-term pass of `verify-log`: for every evidence, its latest seal
(renewed with archive timestamps, or as sealed) and until when its chain of
timestamps proves it existed (``lre.runtime.longterm``).

A renewed seal must be the logged seal extended (same content, signed
attributes and signature), hold as many archive timestamps as its version
number, each over the seal and what preceded it (``lre.runtime.archival``),
each token valid and by a TSA chaining to the anchors. Then the chain must
hold now: each timestamp's certificates still valid when the next one was
made, the last one's now; and no key declared compromised may have signed
what the chain relies on. Evidence never renewed is B-LT: it is reported
once its signature timestamp's certificate has expired.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from sqlalchemy import Connection, select

from lre.runtime import archival, longterm
from lre.server.audit.reading import Report
from lre.server.audit.seals import SealChecker
from lre.server.storage import models
from lre.server.storage.archive import latest_seal_column, latest_version_column
from lre.server.storage.records import table

EVIDENCE = table(models.Evidence)


def check(
    connection: Connection,
    report: Report,
    seals: SealChecker | None,
    compromised: dict[str, longterm.Compromise],
    now: dt.datetime,
) -> None:
    query = select(
        EVIDENCE.c.id,
        EVIDENCE.c.seal,
        latest_seal_column().label("archived"),
        latest_version_column().label("version"),
    ).order_by(EVIDENCE.c.id)
    renewed = 0
    earliest: dt.datetime | None = None
    for row in connection.execute(query).yield_per(500):
        try:
            problem, verdict = _one(row.seal, row.archived, row.version, seals, compromised, now)
        except ValueError as exc:
            problem, verdict = f"its seal cannot be read ({exc})", None
        if problem:
            report.add(f"evidence {row.id}: {problem}")
            continue
        assert verdict is not None
        renewed += row.archived is not None
        ends = verdict.ends
        earliest = ends if earliest is None else min(earliest, ends)
    report.archived = renewed
    if earliest is not None:
        report.notes.append(
            f"{renewed} evidence with archive timestamps (B-LTA); every evidence proven to exist"
            f" at its signature timestamp's time; the earliest coverage ends {earliest:%Y-%m-%d}"
        )


def assess_seal(
    seal: bytes,
    archived: bytes | None,
    seals: SealChecker | None,
    compromised: dict[str, longterm.Compromise],
    now: dt.datetime,
) -> tuple[str | None, str]:
    """Why the seal (and its renewal) no longer proves its evidence, or None
    and what proves it since when."""
    version = len(archival.stamps(archived)) if archived is not None else None
    problem, verdict = _one(seal, archived, version, seals, compromised, now)
    return problem, verdict.detail if verdict else ""


def _one(
    seal: bytes,
    archived: bytes | None,
    version: int | None,
    seals: SealChecker | None,
    compromised: dict[str, longterm.Compromise],
    now: dt.datetime,
) -> tuple[str | None, longterm.Verdict | None]:
    if archived is not None:
        if not archival.same_signature(seal, archived):
            return "its archived seal is not its seal extended", None
        stamps = archival.stamps(archived)
        if len(stamps) != version:
            return (
                f"its archived seal version {version} holds {len(stamps)} archive timestamps",
                None,
            )
    current = archived or seal
    signed_data = cms.ContentInfo.load(current)["content"]
    signer_info = signed_data["signer_infos"][0]
    pool = archival.seal_certificates(current)
    others = [x509.load_der_x509_certificate(c.dump()) for c in pool]
    tokens = [
        attr["values"][0]
        for attr in signer_info["unsigned_attrs"] or []
        if attr["type"].native == "signature_time_stamp_token"
    ] + [s.token for s in (archival.stamps(archived) if archived else [])]
    links = []
    for n, token in enumerate(tokens):
        if n and seals is not None:
            why = seals.timestamp(token.dump(), None, others)
            if why:
                return f"archive timestamp {n} {why}", None
        links.append(link(token, pool))
    signer = _signer(signer_info, pool)
    verdict = longterm.assess(hashlib.sha256(signer.dump()).hexdigest(), links, now, compromised)
    return verdict.problem, verdict


def link(token: cms.ContentInfo, pool: list[asn1_x509.Certificate]) -> longterm.Link:
    signed = token["content"]
    available = [
        *pool,
        *(c.chosen for c in signed["certificates"] or [] if c.name == "certificate"),
    ]
    tsa = _signer(signed["signer_infos"][0], available)
    chain = [tsa]
    while chain[-1].self_signed == "no" and len(chain) < 8:
        issuer = next((c for c in available if c.subject == chain[-1].issuer), None)
        if issuer is None:
            break
        chain.append(issuer)
    tst = tsp.TSTInfo.load(bytes(signed["encap_content_info"]["content"].contents))
    return longterm.Link(
        tst["gen_time"].native,
        hashlib.sha256(tsa.dump()).hexdigest(),
        str(tsa.subject.native.get("common_name", "")),
        min(c["tbs_certificate"]["validity"]["not_after"].native for c in chain),
    )


def _signer(
    signer_info: cms.SignerInfo, certificates: list[asn1_x509.Certificate]
) -> asn1_x509.Certificate:
    sid = signer_info["sid"].chosen
    for c in certificates:
        if c.issuer == sid["issuer"] and c.serial_number == sid["serial_number"].native:
            return c
    raise ValueError("a signing certificate is not included")
