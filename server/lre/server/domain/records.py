"""Stored facts as the services hand them out: plain, frozen records.

Repositories (lre.server.storage) map rows to these; the API layer turns them
into protobuf messages and never sees a row or a database session."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from lre.server.domain.letters import (
    EvidenceEvent,
    Letter,
    LetterState,
    OutboxKind,
    OutboxState,
)


@dataclass(frozen=True)
class LetterRecord:
    id: uuid.UUID
    reference: str
    sender_id: uuid.UUID
    recipient_id: uuid.UUID
    request_id: str
    state: LetterState
    deposit_time: dt.datetime
    notification_time: dt.datetime | None = None
    acceptance_deadline: dt.datetime | None = None
    decision_time: dt.datetime | None = None
    legal_hold: bool = False
    # The content key, wrapped by the signer; None once the content is purged
    # (and for a refused deposit, which never had content).
    wrapped_key: bytes | None = field(default=None, repr=False)
    content_purge_time: dt.datetime | None = None
    # The mailing whose content this letter shares; None for a single letter.
    mailing_id: uuid.UUID | None = None
    # The object store's key of the content (opaque, random); None when the
    # content is in the database (or purged, or the mailing's).
    content_object: str | None = None
    # The retain-until date set on that object, once set.
    content_retain_until: dt.datetime | None = None
    # The SHA-256 of the object's bytes, as written.
    content_digest: bytes | None = field(default=None, repr=False)

    def lifecycle(self) -> Letter:
        """The letter's state machine, to ask the law what may happen next."""
        return Letter(
            state=self.state,
            deposit_time=self.deposit_time,
            notification_time=self.notification_time,
            decision_time=self.decision_time,
        )


@dataclass(frozen=True)
class PartRecord:
    letter_id: uuid.UUID
    index: int
    filename: str
    media_type: str
    size_bytes: int
    sha256: bytes


@dataclass(frozen=True)
class EvidenceRecord:
    id: uuid.UUID
    letter_id: uuid.UUID
    event: EvidenceEvent
    event_time: dt.datetime
    document: bytes
    # The CAdES seal of ``document``; empty until sealed.
    seal: bytes = b""


@dataclass(frozen=True)
class EvidenceWithProof(EvidenceRecord):
    """An evidence read with its signed PDF proof as stored (EvidenceRepository.get):
    ``proof_pdf`` is None while none is stored, so that whoever holds it knows
    without another read (which, inside a transaction on SQLite, would wait for it)."""

    proof_pdf: bytes | None = None
    # The seal extended with archive timestamps (CAdES B-LTA), once renewed.
    archive_seal: bytes | None = None


@dataclass(frozen=True)
class ChargeRecord:
    id: uuid.UUID
    sender_id: uuid.UUID
    letter_id: uuid.UUID
    amount_minor: int
    currency: str
    create_time: dt.datetime


@dataclass(frozen=True)
class MessageRecord:
    """An outbox message: an e-mail to send, and how its delivery went."""

    id: uuid.UUID
    letter_id: uuid.UUID | None
    kind: OutboxKind
    payload: dict[str, Any]
    state: OutboxState
    attempts: int
    # None once nothing more is due (a notice whose evidence is sealed).
    next_attempt_time: dt.datetime | None
    create_time: dt.datetime
    sent_time: dt.datetime | None
    last_error: str | None
    # The lease of the dispatcher sending it (state SENDING), and how many
    # times it was sent again because a dispatcher died holding it.
    claimed_until: dt.datetime | None = None
    resends: int = 0


@dataclass(frozen=True)
class LogEntryRecord:
    id: uuid.UUID
    # Leaf index in the log; None until sequenced.
    seq: int | None
    letter_id: uuid.UUID
    evidence_id: uuid.UUID | None
    state: LetterState
    event: EvidenceEvent | None
    event_time: dt.datetime
    leaf: bytes
    create_time: dt.datetime


@dataclass(frozen=True)
class TreeHeadRecord:
    tree_size: int
    number: int  # 1, 2, ...: each head names its predecessor in its document
    root_hash: bytes
    timestamp: dt.datetime
    document: bytes
    seal: bytes


@dataclass(frozen=True)
class WebhookRecord:
    id: uuid.UUID
    owner_id: uuid.UUID
    url: str
    # The creating request's idempotency key.
    request_id: str
    create_time: dt.datetime
    delete_time: dt.datetime | None
    # The HMAC key, encrypted at rest under the server's secrets key.
    secret_ciphertext: bytes = field(repr=False)
    cursor: int
    attempts: int
    next_attempt_time: dt.datetime
    last_error: str | None


@dataclass(frozen=True)
class Bounce:
    """A message the relay or the recipient's server returned: which, whether
    for good, and the remote server's diagnostic."""

    message_id: str
    permanent: bool
    diagnostic: str
