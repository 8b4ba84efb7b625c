"""Mailings: one document to many recipients, each recipient a letter of its
own with its own proofs and window (domain.md 8). What a mailing is, as
stored, and why a recipient may be refused."""

from __future__ import annotations

import datetime as dt
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
        return exc.reason
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
