"""The security journal (EN 319 401 7.10, EN 319 521): which events are
journaled, with which fields, in the tamper-evident log beside the letters'
entries (same Merkle tree, so the sealed heads protect it).

Minimisation: a field is kept in clear only when it is needed to prove the
event and is not personal data (a level, a method, a resource id, the
provider's certificates, an operator's certificate name); a value only
needed to recognise something later is a keyed hash (HMAC-SHA-256 under the
provider's secrets key: e-mail addresses, document numbers, eID subjects,
session tokens); passwords, one-time codes, enrolment codes and PINs are
never written, not even hashed. Every kind has a closed set of fields
(``FIELDS``): ``verify-log`` names a journal leaf that carries another."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping

from lre.server.domain.evidence import _utc
from lre.server.domain.identity import IdentityRecord
from lre.server.domain.log import FORMAT, FORMAT_V2, JournalRecord, LogKind
from lre.server.domain.records import MessageRecord
from lre.server.domain.retention import salted_digest

K = LogKind
# kind -> (required fields, optional fields), besides format, kind, subject, eventTime.
FIELDS: dict[LogKind, tuple[frozenset[str], frozenset[str]]] = {
    # Who recorded the consent and the digest of its form: on consents
    # recorded since they are kept.
    K.CONSENT_GRANTED: (
        frozenset({"recipientEmailHmac", "senderEmailHmac", "method"}),
        frozenset({"actor", "formSha256"}),
    ),
    K.CONSENT_WITHDRAWN: (
        frozenset({"recipientEmailHmac", "senderEmailHmac", "method"}),
        frozenset({"actor", "formSha256"}),
    ),
    # Who put the status in force ("operator", on the documents "evidence"
    # names, or the "party" itself); entries older than that rule name none.
    K.PROFESSIONAL_DECLARED: (
        frozenset({"emailHmac", "partyKind"}),
        frozenset({"basis", "evidence", "operatorId", "operatorCertificate"}),
    ),
    K.PROFESSIONAL_ENDED: (
        frozenset({"emailHmac", "partyKind", "basis"}),
        frozenset({"evidence", "operatorId", "operatorCertificate"}),
    ),
    # A party's names corrected: the sealed correction (with the names, in
    # party_corrections) bound by its digests.
    K.PARTY_CORRECTED: (
        frozenset({"correction", "documentSha256", "sealSha256", "operatorId"}),
        frozenset({"operatorCertificate"}),
    ),
    # The stored record bound by its SHA-256 (lre-log/1) or, since lre-log/2,
    # by a digest salted with a salt the record keeps and loses on erasure.
    K.IDENTITY_PROOFED: (
        frozenset({"record", "method", "level"}),
        frozenset(
            {
                "recordSha256",
                "recordSaltedSha256",
                "expireTime",
                "operatorId",
                "operatorCertificate",
                "personPresent",
                "documentType",
                "documentNumberHmac",
                "certificateSha256",
                "certificateIssuer",
                # Where trusted lists are configured: qualified or not, and
                # the list (label, file digest) and service that said so.
                "certificateQualified",
                "trustedList",
                "trustedListSha256",
                "qualifiedService",
                "eidIssuer",
                "eidAcr",
                "eidSubjectHmac",
            }
        ),
    ),
    # A party's personal data erased: on its schedule or its request (who
    # decided), and how many rows of each kind went (domain.retention).
    K.PARTY_ERASED: (
        frozenset({"basis", "erased"}),
        frozenset({"operatorId", "operatorCertificate"}),
    ),
    # A party's data exported to it (art. 15, 20): who asked.
    K.PERSONAL_DATA_EXPORTED: (frozenset({"actor"}), frozenset()),
    K.PROOFING_REFUSED: (frozenset({"method", "reason"}), frozenset()),
    K.ENROLMENT_CODE_ISSUED: (frozenset({"expireTime"}), frozenset()),
    K.CREDENTIALS_ENROLLED: (frozenset({"factors"}), frozenset()),
    K.PASSWORD_SET: (frozenset(), frozenset()),
    K.TOTP_ENROLLED: (frozenset(), frozenset()),
    K.EMAIL_CODE_ISSUED: (frozenset({"codeId", "expireTime"}), frozenset()),
    K.SESSION_CREATED: (
        frozenset({"sessionHmac", "level", "oneTimeElement", "expireTime"}),
        # "expired": opened on a proofing that had expired (reading only).
        frozenset({"proofing"}),
    ),
    K.SESSION_REVOKED: (frozenset({"sessionHmac"}), frozenset()),
    # "letter": the notified letter a wrong notice code was given for.
    K.AUTHENTICATION_FAILED: (
        frozenset({"purpose", "reason"}),
        frozenset({"failedAttempts", "letter"}),
    ),
    # "scope": "source" (a caller certificate and the end user it forwards)
    # or "caller" (all its end users, at its ceiling); none before ceilings.
    K.LOCKED_OUT: (frozenset({"purpose", "lockedUntil"}), frozenset({"letter", "scope"})),
    K.UNLOCK_CODE_ISSUED: (frozenset({"codeId", "expireTime"}), frozenset()),
    K.UNLOCKED: (frozenset(), frozenset()),
    K.LEGAL_HOLD_SET: (frozenset({"actor"}), frozenset()),
    K.LEGAL_HOLD_RELEASED: (frozenset({"actor"}), frozenset()),
    K.BOUNCE_RECORDED: (frozenset({"actor", "permanent", "messageKind"}), frozenset()),
    K.EVIDENCE_READ: (frozenset({"actor", "role", "method"}), frozenset({"evidence"})),
    # The sender's copy of its content handed over (the recipient's is sealed
    # as ContentHandover evidence instead).
    K.CONTENT_DOWNLOADED: (frozenset({"role"}), frozenset()),
    K.PROCESS_STARTED: (frozenset({"command", "version", "settingsSha256"}), frozenset()),
    K.SIGNER_CERTIFICATE: (
        frozenset({"certificateSha256", "certificateSubject", "certificateIssuer", "serial"}),
        frozenset({"notAfter"}),
    ),
    K.SIGNER_DOWN: (frozenset({"observer"}), frozenset()),
    K.SIGNER_UP: (frozenset({"observer"}), frozenset()),
}
FIXED = frozenset({"format", "kind", "subject", "eventTime"})
# Fields a kind must carry in one leaf format and may not in the other.
VERSIONED: dict[LogKind, dict[str, str]] = {
    K.IDENTITY_PROOFED: {FORMAT: "recordSha256", FORMAT_V2: "recordSaltedSha256"},
}


def problems(kind: LogKind, leaf: Mapping[str, object]) -> list[str]:
    """What is wrong with a journal leaf's fields for its kind (empty if nothing)."""
    required, optional = FIELDS[kind]
    found = set(leaf) - FIXED
    wrong = []
    if missing := sorted(required - found):
        wrong.append(f"lacks {', '.join(missing)}")
    if extra := sorted(found - required - optional):
        wrong.append(f"carries {', '.join(extra)}, which its kind does not have")
    if any(not isinstance(leaf[k], str) for k in found):
        wrong.append("has a field that is not a string")
    versioned = VERSIONED.get(kind, {})
    for version, name in versioned.items():
        if (leaf.get("format") == version) != (name in found):
            wrong.append(f"carries {name} in a leaf of format {leaf.get('format')}")
    return wrong


def keyed(key: bytes, label: str, value: str | bytes) -> str:
    """A value the journal must recognise but not show: HMAC-SHA-256 under
    the provider's key, domain-separated by ``label``."""
    data = value.encode() if isinstance(value, str) else value
    return hmac.new(key, f"log-{label}:".encode() + data, hashlib.sha256).hexdigest()


def record_digest(content: dict[str, object]) -> str:
    """SHA-256 of a stored record's canonical JSON: binds the row to its entry."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def entry(
    kind: LogKind, subject: str, at: dt.datetime, **facts: str | bool | int | dt.datetime | None
) -> JournalRecord:
    """A journal record; None facts are left out, others written as strings."""
    return _entry(kind, subject, at, FORMAT, facts)


def salted_entry(
    kind: LogKind, subject: str, at: dt.datetime, **facts: str | bool | int | dt.datetime | None
) -> JournalRecord:
    """A journal record in the lre-log/2 format, whose digests of personal
    data are salted (the salt erased with the data: domain.retention)."""
    return _entry(kind, subject, at, FORMAT_V2, facts)


def _entry(
    kind: LogKind,
    subject: str,
    at: dt.datetime,
    leaf_format: str,
    facts: Mapping[str, str | bool | int | dt.datetime | None],
) -> JournalRecord:
    def text(value: str | bool | int | dt.datetime) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dt.datetime):
            return _utc(value)
        return str(value)

    kept = tuple(sorted((k, text(v)) for k, v in facts.items() if v is not None))
    record = JournalRecord(kind, subject, at, kept, leaf_format)
    assert not problems(kind, {**dict(kept), "format": leaf_format}), kept
    return record


def identity_record_digest(record: IdentityRecord) -> str:
    """The stored identity record, as the journal binds it (recordSha256)."""
    return record_digest(identity_record_content(record))


def identity_record_salted_digest(record: IdentityRecord) -> str | None:
    """The record as lre-log/2 binds it (recordSaltedSha256): None once its
    salt is erased, when nothing can tell the record any more."""
    if record.digest_salt is None:
        return None
    return salted_record_digest(record.digest_salt, identity_record_content(record))


def salted_record_digest(salt: bytes, content: dict[str, object]) -> str:
    """recordSaltedSha256 of a record's content (``identity_record_content``)."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return salted_digest(salt, canonical.encode())


def identity_record_content(record: IdentityRecord) -> dict[str, object]:
    """What the journal's digests of an identity record cover."""
    return {
        "id": str(record.id),
        "party": str(record.party_id),
        "method": record.method.value,
        "level": record.level.name.lower(),
        "proofTime": _utc(record.proof_time),
        "expireTime": _utc(record.expire_time) if record.expire_time else None,
        "details": record.details,
    }


def bounce(message: MessageRecord, permanent: bool, actor: str, at: dt.datetime) -> JournalRecord:
    """An operator recorded that a message came back (not the diagnostic: it
    may quote the address)."""
    subject = f"letters/{message.letter_id}/notifications/{message.id}"
    if message.letter_id is None:
        subject = f"notifications/{message.id}"
    return entry(
        LogKind.BOUNCE_RECORDED,
        subject,
        at,
        actor=actor,
        permanent=permanent,
        messageKind=message.kind.value,
    )
