"""Mailings: one document to many recipients, each recipient a letter of its
own with its own proofs and window (domain.md 8). What a mailing is, as
stored, and why a recipient may be refused."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from lre.server.domain.errors import DepositRefused
from lre.server.domain.evidence import PartyDetails
from lre.server.domain.identity import CONSENT_MISSING as CONSENT_MISSING
from lre.server.domain.identity import (
    CONSENT_MISSING_REASON,
    Recipient,
    require_consent,
)

MAX_RECIPIENTS = 5000

# A recipient refused at deposit; the others go on.
PARTY_UNKNOWN = "party_unknown"  # no such party
INVALID_ADDRESS = "invalid_address"  # not a party's name, or no usable e-mail address
REASONS = {
    # A consumer who has not consented (CPCE L100).
    CONSENT_MISSING: CONSENT_MISSING_REASON,
    PARTY_UNKNOWN: "no such party",
    INVALID_ADDRESS: "not a party's name, or the party has no usable e-mail address",
}


def party_id(name: str) -> uuid.UUID | None:
    """The id in "parties/{id}", or None when the sender gave something else."""
    prefix, _, rest = name.partition("/")
    if prefix != "parties":
        return None
    try:
        return uuid.UUID(rest)
    except ValueError:
        return None


def duplicates(names: list[str]) -> dict[int, int]:
    """Each recipient named again: its position, and the position it repeats.
    The same party twice would get two letters of one mailing (two notices,
    two charges): the sender means one, so the mailing is refused whole."""
    first: dict[object, int] = {}
    again: dict[int, int] = {}
    for position, name in enumerate(names):
        key: object = party_id(name) or name.strip().lower()
        if key in first:
            again[position] = first[key]
        else:
            first[key] = position
    return again


def refusal(
    party: uuid.UUID | None, found: tuple[PartyDetails, bool] | None, consented: bool
) -> str | None:
    """Why a recipient of a mailing gets no letter, or None. ``found``: the
    party's details and whether it is a professional, None if no such party.
    The same law as a single deposit: a consumer's consent (CPCE L100), by
    the same rule."""
    if party is None:
        return INVALID_ADDRESS
    if found is None:
        return PARTY_UNKNOWN
    details, professional = found
    local, at, domain = details.email.rpartition("@")
    if not (at and local and "." in domain) or any(c.isspace() for c in details.email):
        return INVALID_ADDRESS
    try:
        require_consent(Recipient(str(party), professional), consented)
    except DepositRefused as exc:
        return exc.code
    return None


@dataclass(frozen=True)
class MailingRecord:
    id: uuid.UUID
    sender_id: uuid.UUID
    request_id: str
    reference: str
    deposit_time: dt.datetime
    # The declared parts and their SHA-256 (hex): filename, media_type, size_bytes, sha256.
    parts: list[dict[str, Any]]
    # The content key wrapped bound to the mailing; None once the content is purged.
    wrapped_key: bytes | None = field(default=None, repr=False)
    content_purge_time: dt.datetime | None = None
    # As a letter's (LetterRecord): the content's object and its retain-until date.
    content_object: str | None = None
    content_retain_until: dt.datetime | None = None
    content_digest: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class MailingRecipientRecord:
    mailing_id: uuid.UUID
    position: int
    recipient: str
    letter_reference: str
    letter_id: uuid.UUID | None = None
    reason_code: str | None = None
    reason: str | None = None
    # The sealed SubmissionRejection of a refused recipient.
    evidence_id: uuid.UUID | None = None
    evidence_time: dt.datetime | None = None
    evidence_document: bytes | None = field(default=None, repr=False)
    evidence_seal: bytes | None = field(default=None, repr=False)


SUMMARY_FORMAT = "lre-mailing-summary/1"


def summary_document(
    mailing: MailingRecord,
    sender: PartyDetails,
    issuer: str,
    recipients: list[MailingRecipientRecord],
    at: dt.datetime,
) -> bytes:
    """What a mailing's sealed summary states, as canonical JSON: who sent
    what (the shared content's digests) to whom, and for each recipient its
    letter or why it was refused with the name of that refusal's evidence.
    The letters' later lives are in their own evidence; this is the deposit."""
    name = f"mailings/{mailing.id}"
    document = {
        "format": SUMMARY_FORMAT,
        "issuer": issuer,
        "mailing": name,
        "reference": mailing.reference,
        "sender": {"name": sender.name, "email": sender.email, "id": f"parties/{sender.party_id}"},
        "depositTime": _utc(mailing.deposit_time),
        "summaryTime": _utc(at),
        "content": [
            {
                "filename": p["filename"],
                "mediaType": p["media_type"],
                "size": p["size_bytes"],
                "sha256": p["sha256"],
            }
            for p in mailing.parts
        ],
        "recipients": [
            {
                "index": r.position,
                "recipient": r.recipient,
                "letterReference": r.letter_reference,
                **(
                    {"letter": f"letters/{r.letter_id}"}
                    if r.letter_id is not None
                    else {
                        "refusal": r.reason_code,
                        "evidence": f"{name}/recipients/{r.position}/evidence/{r.evidence_id}",
                    }
                ),
            }
            for r in recipients
        ],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _utc(when: dt.datetime) -> str:
    if when.tzinfo is None:  # stored in UTC
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
