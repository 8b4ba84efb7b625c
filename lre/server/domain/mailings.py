"""Mailings: one document to many recipients, each recipient a letter of its
own with its own proofs and window (domain.md 8). What a mailing is, as
stored, and why a recipient may be refused."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

MAX_RECIPIENTS = 5000

# A recipient refused at deposit; the others go on.
CONSENT_MISSING = "consent_missing"  # a consumer who has not consented (CPCE L100)
PARTY_UNKNOWN = "party_unknown"  # no such party
INVALID_ADDRESS = "invalid_address"  # not a party's name, or no usable e-mail address


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
