"""The custody tables: letters, their content, evidence and proofs, mailings,
the outbox, the log and its tree, webhooks, charges."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from lre.server.domain.letters import EvidenceEvent, LetterState, OutboxState
from lre.server.storage.models.base import Base, db_enum

# Content objects whose retention is not set yet: the few the content
# objects worker looks for on every round, among all the letters kept.
UNRETAINED = (
    "content_object IS NOT NULL AND content_retain_until IS NULL AND content_purge_time IS NULL"
)


def _unretained_index(table: str) -> Index:
    where = text(UNRETAINED)
    return Index(
        f"ix_{table}_unretained", "deposit_time", postgresql_where=where, sqlite_where=where
    )


class Letter(Base):
    __tablename__ = "letters"
    __table_args__ = (
        UniqueConstraint("sender_id", "request_id"),
        # The deadline sweep reads only letters still waiting, by deadline.
        Index("ix_letters_state_deadline", "state", "acceptance_deadline"),
        _unretained_index("letters"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    sender_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), index=True)
    recipient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), index=True)
    request_id: Mapped[str] = mapped_column(String(128))
    state: Mapped[LetterState] = mapped_column(db_enum(LetterState, "letter_state"))
    deposit_time: Mapped[dt.datetime]
    notification_time: Mapped[dt.datetime | None]
    acceptance_deadline: Mapped[dt.datetime | None]
    decision_time: Mapped[dt.datetime | None]
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    # AES-256-GCM content key, wrapped by the signer's token key; never in clear.
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    content_purge_time: Mapped[dt.datetime | None]
    # A letter of a mailing reads the mailing's content (``wrapped_key`` is
    # then the mailing's key, bound to the mailing); None for a single letter.
    mailing_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("mailings.id"), index=True)
    # Where the content is when it is in the object store (an opaque random
    # key); None: in content_chunks (or purged, or a letter of a mailing).
    content_object: Mapped[str | None] = mapped_column(String(64))
    # The Object Lock retain-until date set on that object; None until it is
    # set (just after the deposit commits, or by the content objects worker).
    content_retain_until: Mapped[dt.datetime | None]
    # The SHA-256 of the object's bytes as written: the audit reads it back.
    content_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32))


class Mailing(Base):
    """One document to many recipients: the content stored once, each
    recipient's letter (or refusal) in mailing_recipients."""

    __tablename__ = "mailings"
    __table_args__ = (UniqueConstraint("sender_id", "request_id"), _unretained_index("mailings"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    sender_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), index=True)
    request_id: Mapped[str] = mapped_column(String(128))
    # The sender's own reference (a general assembly, a rent review).
    reference: Mapped[str] = mapped_column(String(200))
    deposit_time: Mapped[dt.datetime]
    # The declared parts with their digests: what a retry is compared with.
    parts: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # The content key wrapped bound to the mailing; None once no letter needs the content.
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    content_purge_time: Mapped[dt.datetime | None]
    # As a letter's: the object holding the content, its retain-until date, its digest.
    content_object: Mapped[str | None] = mapped_column(String(64))
    content_retain_until: Mapped[dt.datetime | None]
    content_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32))


class LooseObject(Base):
    """An object of the object store that no letter or mailing refers to (yet
    or any more): written before its deposit commits (the deposit's
    transaction deletes this row), or left by a purge or a move back to the
    database. The content objects worker deletes each once due: an upload
    still running is given an hour; a locked object waits for its date."""

    __tablename__ = "loose_objects"

    object_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    due_time: Mapped[dt.datetime] = mapped_column(index=True)


class MailingRecipient(Base):
    """A recipient of a mailing, in the order given: its letter, or why it was
    refused with the sealed SubmissionRejection (a refused recipient may be no
    known party, so the evidence is kept here rather than under a letter)."""

    __tablename__ = "mailing_recipients"
    __table_args__ = (UniqueConstraint("mailing_id", "position"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    mailing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mailings.id"))
    position: Mapped[int] = mapped_column(Integer)
    # As the sender gave it ("parties/{id}").
    recipient: Mapped[str] = mapped_column(String(200))
    letter_reference: Mapped[str] = mapped_column(String(200))
    letter_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("letters.id"), unique=True)
    reason_code: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(500))
    evidence_id: Mapped[uuid.UUID | None]
    evidence_time: Mapped[dt.datetime | None]
    evidence_document: Mapped[bytes | None] = mapped_column(LargeBinary)
    evidence_seal: Mapped[bytes | None] = mapped_column(LargeBinary)


class MailingChunk(Base):
    """A mailing's encrypted content, once for all its letters."""

    __tablename__ = "mailing_chunks"
    __table_args__ = (UniqueConstraint("mailing_id", "part_index", "sequence"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    mailing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mailings.id", ondelete="CASCADE"))
    part_index: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)


class LetterPart(Base):
    __tablename__ = "letter_parts"
    __table_args__ = (UniqueConstraint("letter_id", "part_index"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    letter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("letters.id", ondelete="CASCADE"))
    part_index: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(127))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[bytes] = mapped_column(LargeBinary(32))


class ContentChunk(Base):
    """Encrypted content, in chunks so that nothing holds a whole letter."""

    __tablename__ = "content_chunks"
    __table_args__ = (UniqueConstraint("letter_id", "part_index", "sequence"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    letter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("letters.id", ondelete="CASCADE"))
    part_index: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)


class Evidence(Base):
    __tablename__ = "evidence"
    # One evidence per event and letter: a second sweeper's insert fails.
    __table_args__ = (UniqueConstraint("letter_id", "event"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    letter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("letters.id"))
    event: Mapped[EvidenceEvent] = mapped_column(db_enum(EvidenceEvent, "evidence_event"))
    event_time: Mapped[dt.datetime]
    document: Mapped[bytes] = mapped_column(LargeBinary)
    seal: Mapped[bytes] = mapped_column(LargeBinary)


class EvidenceProof(Base):
    """The signed PDF proof of an evidence, made once (rendering and signing
    take tenths of a second) and served as stored ever after: the e-mailed
    copy, GetEvidenceProof and the bundle are the same bytes. A table of its
    own so that reading evidence never loads PDFs."""

    __tablename__ = "evidence_proofs"

    evidence_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("evidence.id"), primary_key=True)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    create_time: Mapped[dt.datetime]


class OutboxMessage(Base):
    """Written in the transaction of the state change that causes it."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_state_next_attempt", "state", "next_attempt_time"),
        # The notices left unsealed (the sealer), the messages due (the backlog).
        Index("ix_outbox_messages_kind_state_next_attempt", "kind", "state", "next_attempt_time"),
        Index("ix_outbox_messages_state_create", "state", "create_time"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    letter_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("letters.id"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[OutboxState] = mapped_column(db_enum(OutboxState, "outbox_state"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # None once nothing more is due (a notice whose evidence is sealed).
    next_attempt_time: Mapped[dt.datetime | None]
    create_time: Mapped[dt.datetime]
    sent_time: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    # A claim's lease: past it, a message still SENDING was claimed by a dispatcher that died.
    claimed_until: Mapped[dt.datetime | None]
    resends: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class LogEntry(Base):
    """The append-only log of every state change and evidence (RFC 9162 leaves).

    An entry is written unsequenced in the transaction of the change it
    records; the sequencer then gives entries their index (``seq``) one batch
    at a time, in commit order, so a reader following ``seq`` never skips one."""

    __tablename__ = "log_entries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # Leaf index, from 0, contiguous; None until sequenced.
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    # None in the entries about a party (a consent, a professional declaration).
    letter_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("letters.id"), index=True)
    evidence_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("evidence.id"), unique=True)
    state: Mapped[LetterState | None] = mapped_column(db_enum(LetterState, "letter_state"))
    event: Mapped[EvidenceEvent | None] = mapped_column(db_enum(EvidenceEvent, "evidence_event"))
    event_time: Mapped[dt.datetime]
    # The canonical bytes the leaf hash covers.
    leaf: Mapped[bytes] = mapped_column(LargeBinary)
    create_time: Mapped[dt.datetime]


class TreeHead(Base):
    """A signed statement of the log's size and Merkle root at a moment: the
    document, and its CAdES seal by the signer."""

    __tablename__ = "tree_heads"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # 1, 2, 3...: a deleted head leaves a gap (each document names its predecessor).
    number: Mapped[int] = mapped_column(BigInteger, unique=True)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    timestamp: Mapped[dt.datetime]
    document: Mapped[bytes] = mapped_column(LargeBinary)
    seal: Mapped[bytes] = mapped_column(LargeBinary)


class TreeNode(Base):
    """The hash of each perfect subtree of the log's Merkle tree (2**level
    leaves from position * 2**level), written when a head is sealed: a root or
    a proof over n leaves then reads O(log n) rows, not n leaves."""

    __tablename__ = "tree_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class Webhook(Base):
    """A provider system's callback URL for the events of a party's letters."""

    __tablename__ = "webhooks"
    # Idempotency keys are the owner's: another party's key is none of its business.
    __table_args__ = (UniqueConstraint("owner_id", "request_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    # The HMAC-SHA256 key, AES-GCM encrypted under the server's secrets key.
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    request_id: Mapped[str] = mapped_column(String(128))
    create_time: Mapped[dt.datetime]
    delete_time: Mapped[dt.datetime | None]
    # The last log entry delivered (or given up on); the next delivery follows it.
    cursor: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_time: Mapped[dt.datetime]
    last_error: Mapped[str | None] = mapped_column(Text)


class Charge(Base):
    """What the sender owes for an accepted deposit (the sender pays)."""

    __tablename__ = "charges"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    sender_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), index=True)
    letter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("letters.id"), unique=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    create_time: Mapped[dt.datetime]


class EvidenceArchiveVersion(Base):
    """Each renewal of an evidence's archive timestamps: the seal extended
    (CAdES B-LTA) and the PDF proof with one more document timestamp (PAdES
    B-LTA), a new version beside the earlier ones, which stay as they were;
    the latest is served. The evidence row keeps the seal the log names."""

    __tablename__ = "evidence_archive_versions"

    evidence_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("evidence.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    seal: Mapped[bytes] = mapped_column(LargeBinary)
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary)
    create_time: Mapped[dt.datetime]


class EvidenceArchiveCoverage(Base):
    """Until when each evidence's timestamps prove it (the earliest expiry of
    the last timestamp's certificates, or the algorithm sunset): what the
    renewal worker reads, and what an assessor is shown. An evidence without
    a row has not been looked at yet (the backfill takes those)."""

    __tablename__ = "evidence_archive_coverage"

    evidence_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("evidence.id"), primary_key=True)
    covered_until: Mapped[dt.datetime] = mapped_column(index=True)
    archive_timestamps: Mapped[int] = mapped_column(Integer)
    update_time: Mapped[dt.datetime]
