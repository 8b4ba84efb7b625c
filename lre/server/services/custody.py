"""Custody use cases: deposit, and what senders and recipients may read.

A deposit is one transaction: the letter, its encrypted content, the sealed
proof of deposit, the notification to send and the charge commit together or
not at all. A refused deposit commits only its SubmissionRejection evidence.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.domain import identity
from lre.server.domain.errors import (
    AuthenticationRequired,
    DepositRefused,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from lre.server.domain.evidence import EvidenceDocument, PartDigest, PartyDetails
from lre.server.domain.letters import (
    EvidenceEvent,
    Letter,
    LetterState,
    OutboxState,
    Outcome,
    PartyKind,
)
from lre.server.domain.log import LogRecord, sha256_hex
from lre.server.services.identity import IdentityService
from lre.server.signing import ContentKeys, SignerClient, letter_key_context
from lre.server.storage import models
from lre.server.storage.paging import paged

PURGED = Counter(
    "lre_letter_contents_purged", "Letter contents deleted at the end of their retention."
)
EXPIRED = Counter("lre_letters_expired", "Letters whose acceptance window closed unanswered.")
NON_CLAIM_DELAY = Histogram(
    "lre_non_claim_proof_delay_seconds",
    "From the end of an acceptance window to the sealing of its proof of non-claim.",
    buckets=(60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 2 * 86400),
)
PROOFS_LATE = Counter(
    "lre_non_claim_proofs_late",
    "Proofs of non-claim sealed after the end of the day following the window (R53-3).",
)
PENDING_NON_CLAIM = Gauge(
    "lre_non_claim_oldest_pending_seconds",
    "How long the oldest closed window has waited for its proof of non-claim (0: none).",
    multiprocess_mode="livemax",
)
LETTERS = Gauge(
    "lre_letters", "Letters in each state, as last counted.", ["state"], multiprocess_mode="livemax"
)
DEPOSITS = Counter("lre_letters_deposited", "Deposits, by outcome.", ["outcome"])
for _outcome in ("accepted", "rejected"):
    DEPOSITS.labels(_outcome)

MAX_PARTS = 100
MAX_CHUNK_BYTES = 1024 * 1024
# Flush encrypted chunks to the database every this many bytes, so that
# memory stays flat whatever the letter's size.
FLUSH_BYTES = 4 * 1024 * 1024
REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass(frozen=True)
class DeclaredPart:
    filename: str
    media_type: str
    size_bytes: int


# The content outlives the 15-day window and the day after it, whatever the setting.
MIN_CONTENT_RETENTION = dt.timedelta(days=30)
FINAL_STATES = (
    LetterState.ACCEPTED,
    LetterState.REFUSED,
    LetterState.EXPIRED,
    LetterState.NOTIFICATION_FAILED,
)


@dataclass(frozen=True)
class CustodyPolicy:
    provider_name: str
    max_letter_bytes: int
    tariff_minor: int
    currency: str
    # Letter content is deleted this long after deposit, once the letter is
    # final and unless it is on legal hold. Evidence is kept.
    content_retention: dt.timedelta = dt.timedelta(days=365)
    # Days after the notification on which a recipient who has not answered is reminded.
    reminder_days: tuple[int, ...] = (7, 13)

    def __post_init__(self) -> None:
        if self.content_retention < MIN_CONTENT_RETENTION:
            raise ValueError("content retention must be at least 30 days")
        if any(not 0 < day < 15 for day in self.reminder_days):
            raise ValueError("reminders fall within the 15-day window (days 1 to 14)")


@dataclass(frozen=True)
class _Party:
    details: PartyDetails
    professional: bool


def _parties(db: DbSession, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, _Party]:
    """What the evidence names of each party (R53-2), read in one query."""
    p = models.Party
    rows = db.execute(
        select(
            p.id, p.kind, p.professional, p.given_name, p.family_name, p.company_name, p.email
        ).where(p.id.in_(set(ids)))
    )
    found = {}
    for row in rows:
        name = (
            row.company_name
            if row.kind is PartyKind.LEGAL_PERSON
            else f"{row.given_name} {row.family_name}"
        )
        found[row.id] = _Party(PartyDetails(name or "", row.email), row.professional)
    return found


# Rows to insert, table by table, parents before children.
Writes = list[tuple[type[models.Base], list[dict[str, Any]]]]


def _write(db: DbSession, writes: Writes) -> None:
    """Core INSERTs in the caller's transaction, written at once: the write
    paths of deposits and evidence spent more CPU in the ORM's unit of work
    than in everything else (docs/performance.md)."""
    for model, rows in writes:
        if rows:
            db.execute(insert(model.__table__), rows)  # type: ignore[arg-type]


# The evidence the sender receives by e-mail as well (domain.md 6).
SENDER_PROOFS = frozenset(
    {
        EvidenceEvent.SUBMISSION_ACCEPTANCE,
        EvidenceEvent.CONSIGNMENT_ACCEPTANCE,
        EvidenceEvent.CONSIGNMENT_REJECTION,
        EvidenceEvent.ACCEPTANCE_REJECTION_EXPIRY,
        EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE_FAILURE,
    }
)


def _parts(db: DbSession, letter_id: uuid.UUID) -> list[models.LetterPart]:
    return list(
        db.scalars(
            select(models.LetterPart)
            .where(models.LetterPart.letter_id == letter_id)
            .order_by(models.LetterPart.part_index)
        )
    )


def _letter_row(letter: models.Letter) -> dict[str, Any]:
    return {c.key: getattr(letter, c.key) for c in models.Letter.__table__.columns}


def _chunk_aad(letter_id: uuid.UUID, part: int, sequence: int) -> bytes:
    # Binds each chunk to its place: chunks cannot be swapped between letters or reordered.
    return f"{letter_id}:{part}:{sequence}".encode()


class CustodyService:
    def __init__(
        self,
        sessions: sessionmaker[DbSession],
        identities: IdentityService,
        signer: SignerClient,
        policy: CustodyPolicy,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._sessions = sessions
        self._identities = identities
        self._signer = signer
        self._policy = policy
        self._clock = clock
        self._content_keys = ContentKeys(signer)

    # -- deposit ------------------------------------------------------------

    def deposit(
        self,
        session: identity.Session,
        request_id: str,
        recipient_id: uuid.UUID,
        parts: list[DeclaredPart],
        chunks: Iterable[tuple[int, bytes]],
    ) -> tuple[models.Letter, list[models.LetterPart]]:
        """The deposited letter and its parts; refusals raise DepositRefused."""
        now = self._clock()
        if not request_id or len(request_id) > 128:
            raise InvalidArgument("envelope.request_id", "required, at most 128 characters")
        if not 0 < len(parts) <= MAX_PARTS:
            raise InvalidArgument("envelope.parts", f"declare 1 to {MAX_PARTS} parts")
        for i, part in enumerate(parts):
            if (
                not part.filename
                or len(part.filename) > 255
                or "/" in part.filename
                or "\\" in part.filename
            ):
                raise InvalidArgument(
                    f"envelope.parts[{i}].filename", "a file name without a path, at most 255"
                )
            if not part.media_type or len(part.media_type) > 127:
                raise InvalidArgument(
                    f"envelope.parts[{i}].media_type", "required, at most 127 characters"
                )
            if part.size_bytes < 0:
                raise InvalidArgument(f"envelope.parts[{i}].size_bytes", "must not be negative")
        sender_id = uuid.UUID(session.party_id)
        try:
            return self._deposit_once(
                session, sender_id, request_id, recipient_id, parts, chunks, now
            )
        except IntegrityError:
            # The request_id was used before (a retry), or raced in from another
            # call and won: (sender, request_id) is unique, so the first letter is
            # the answer. Looking it up only on conflict saves every deposit a query.
            with self._sessions() as db:
                existing = self._by_request(db, sender_id, request_id)
                if existing is None:
                    raise
                return self._replay(db, existing)

    def _deposit_once(
        self,
        session: identity.Session,
        sender_id: uuid.UUID,
        request_id: str,
        recipient_id: uuid.UUID,
        parts: list[DeclaredPart],
        chunks: Iterable[tuple[int, bytes]],
        now: dt.datetime,
    ) -> tuple[models.Letter, list[models.LetterPart]]:
        """The whole deposit in one transaction: lookups, checks and writes."""
        refusal: DepositRefused | None = None
        with self._sessions.begin() as db:
            found = _parties(db, (sender_id, recipient_id))
            if recipient_id not in found or sender_id not in found:
                raise NotFound("no such party")
            sender, recipient = found[sender_id], found[recipient_id]
            letter = self._new_letter(sender_id, recipient_id, request_id, now)
            try:
                identity.require_sender(session, now)
                identity.require_consent(
                    identity.Recipient(str(recipient_id), recipient.professional),
                    # Only a consumer's consent matters; a professional's is not looked up.
                    not recipient.professional
                    and self._identities.has_consent_in(db, recipient_id, sender_id),
                )
                self._check_size(parts)
            except (AuthenticationRequired, DepositRefused) as exc:
                reason = exc.reason if isinstance(exc, DepositRefused) else "sender_not_identified"
                field = exc.field if isinstance(exc, DepositRefused) else "authorization"
                letter.state = LetterState.REJECTED
                evidence = self._sealed(
                    self._document(
                        letter,
                        EvidenceEvent.SUBMISSION_REJECTION,
                        sender.details,
                        recipient.details,
                        (),
                        now,
                        (reason, str(exc)),
                    )
                )
                _write(
                    db,
                    [
                        (models.Letter, [_letter_row(letter)]),
                        *self._evidence_writes([(letter, evidence)]),
                    ],
                )
                refusal = DepositRefused(reason, str(exc), field, f"letters/{letter.id}")
            else:
                written = self._accept(db, letter, sender, recipient, parts, chunks, now)
        if refusal is not None:
            DEPOSITS.labels("rejected").inc()
            raise refusal
        DEPOSITS.labels("accepted").inc()
        return letter, written

    def _check_size(self, parts: list[DeclaredPart]) -> None:
        total = sum(p.size_bytes for p in parts)
        if total == 0 or any(p.size_bytes == 0 for p in parts):
            raise DepositRefused("content_empty", "every part must have content", "envelope.parts")
        if total > self._policy.max_letter_bytes:
            raise DepositRefused(
                "content_too_large",
                f"the letter exceeds {self._policy.max_letter_bytes} bytes",
                "envelope.parts",
            )

    @staticmethod
    def _by_request(db: DbSession, sender_id: uuid.UUID, request_id: str) -> models.Letter | None:
        return db.scalar(
            select(models.Letter).where(
                models.Letter.sender_id == sender_id, models.Letter.request_id == request_id
            )
        )

    @staticmethod
    def _replay(
        db: DbSession, letter: models.Letter
    ) -> tuple[models.Letter, list[models.LetterPart]]:
        """A retried deposit gets the first result: the letter, or the same refusal."""
        if letter.state is not LetterState.REJECTED:
            return letter, _parts(db, letter.id)
        evidence = db.scalar(select(models.Evidence).where(models.Evidence.letter_id == letter.id))
        document = json.loads(evidence.document) if evidence else {}
        raise DepositRefused(
            document.get("reasonCode", "rejected"),
            document.get("reason", "deposit refused"),
            letter=f"letters/{letter.id}",
        )

    def _document(
        self,
        letter: models.Letter,
        event: EvidenceEvent,
        sender: PartyDetails,
        recipient: PartyDetails,
        digests: tuple[PartDigest, ...],
        at: dt.datetime,
        reason: tuple[str, str] | None = None,
    ) -> models.Evidence:
        """An evidence, not yet sealed; ``reason`` is (code, text)."""
        evidence_id = uuid.uuid4()
        document = EvidenceDocument(
            evidence_id=str(evidence_id),
            event=event,
            event_time=at,
            issuer=self._policy.provider_name,
            sender=sender,
            recipient=recipient,
            letter_id=f"letters/{letter.id}",
            submission_time=letter.deposit_time,
            parts=digests,
            reason=reason[1] if reason else None,
            reason_code=reason[0] if reason else None,
        ).to_json()
        return models.Evidence(
            id=evidence_id, letter_id=letter.id, event=event, event_time=at, document=document
        )

    def _sealed(self, evidence: models.Evidence) -> models.Evidence:
        evidence.seal = self._signer.seal(evidence.document)
        return evidence

    def _evidence_writes(
        self,
        written: list[tuple[models.Letter, models.Evidence]],
        messages: Iterable[dict[str, Any]] = (),
    ) -> Writes:
        """Sealed evidence and what goes with it in the same transaction: its
        entry in the log, the sender's copy when it is a proof the sender
        receives, and ``messages`` (more outbox rows)."""
        now = self._clock()
        return [
            (
                models.Evidence,
                [
                    {
                        "id": e.id,
                        "letter_id": e.letter_id,
                        "event": e.event,
                        "event_time": e.event_time,
                        "document": e.document,
                        "seal": e.seal,
                    }
                    for _, e in written
                ],
            ),
            (
                models.LogEntry,
                [
                    self._log_entry(
                        LogRecord(
                            letter_id=str(letter.id),
                            state=letter.state,
                            event_time=e.event_time,
                            event=e.event,
                            evidence_id=f"letters/{letter.id}/evidence/{e.id}",
                            document_sha256=sha256_hex(e.document),
                            seal_sha256=sha256_hex(e.seal),
                        ),
                        e.id,
                    )
                    for letter, e in written
                ],
            ),
            (
                models.OutboxMessage,
                [
                    models.outbox_row(
                        e.letter_id,
                        "proof",
                        {"evidence": str(e.id), "event": e.event.value},
                        now,
                        now,
                    )
                    for _, e in written
                    if e.event in SENDER_PROOFS
                ]
                + list(messages),
            ),
        ]

    def _log_entry(self, record: LogRecord, evidence_id: uuid.UUID | None) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(),
            "seq": None,
            "letter_id": uuid.UUID(record.letter_id),
            "evidence_id": evidence_id,
            "state": record.state,
            "event": record.event,
            "event_time": record.event_time,
            "leaf": record.leaf(),
            "create_time": self._clock(),
        }

    @staticmethod
    def _new_letter(
        sender_id: uuid.UUID, recipient_id: uuid.UUID, request_id: str, now: dt.datetime
    ) -> models.Letter:
        return models.Letter(
            id=uuid.uuid4(),
            reference="".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(12)),
            sender_id=sender_id,
            recipient_id=recipient_id,
            request_id=request_id,
            state=LetterState.DEPOSITED,
            deposit_time=now,
            legal_hold=False,
        )

    def _accept(
        self,
        db: DbSession,
        letter: models.Letter,
        sender: _Party,
        recipient: _Party,
        parts: list[DeclaredPart],
        chunks: Iterable[tuple[int, bytes]],
        now: dt.datetime,
    ) -> list[models.LetterPart]:
        content_key = self._content_keys.take()
        letter.id, letter.wrapped_key = content_key.letter_id, content_key.wrapped
        digests, written = self._store_content(db, letter, content_key.key, parts, chunks)
        evidence = self._sealed(
            self._document(
                letter,
                EvidenceEvent.SUBMISSION_ACCEPTANCE,
                sender.details,
                recipient.details,
                digests,
                now,
            )
        )
        notice = models.outbox_row(
            letter.id, "letter_waiting", {"letter": f"letters/{letter.id}"}, now, now
        )
        charge = {
            "id": uuid.uuid4(),
            "sender_id": letter.sender_id,
            "letter_id": letter.id,
            "amount_minor": self._policy.tariff_minor,
            "currency": self._policy.currency,
            "create_time": now,
        }
        parts_rows = [
            {
                "letter_id": p.letter_id,
                "part_index": p.part_index,
                "filename": p.filename,
                "media_type": p.media_type,
                "size_bytes": p.size_bytes,
                "sha256": p.sha256,
            }
            for p in written
        ]
        _write(
            db,
            [
                (models.LetterPart, parts_rows),
                *self._evidence_writes([(letter, evidence)], [notice]),
                (models.Charge, [charge]),
            ],
        )
        return written

    def _store_content(
        self,
        db: DbSession,
        letter: models.Letter,
        key: bytes,
        parts: list[DeclaredPart],
        chunks: Iterable[tuple[int, bytes]],
    ) -> tuple[tuple[PartDigest, ...], list[models.LetterPart]]:
        """Encrypts and writes the content, and the letter row with its first
        chunks; returns the parts, for the caller to write."""
        letter_id = letter.id
        cipher = AESGCM(key)
        hashes = [hashlib.sha256() for _ in parts]
        sizes = [0] * len(parts)
        current, sequence, unflushed = 0, 0, 0
        pending: list[dict[str, Any]] = []
        unwritten_letter = [_letter_row(letter)]
        for part_index, data in chunks:
            if not 0 <= part_index < len(parts) or part_index < current:
                raise InvalidArgument("chunk.part_index", "parts must follow in the declared order")
            if not data or len(data) > MAX_CHUNK_BYTES:
                raise InvalidArgument("chunk.data", f"chunks carry 1 to {MAX_CHUNK_BYTES} bytes")
            if part_index != current:
                current, sequence = part_index, 0
            sizes[part_index] += len(data)
            if sizes[part_index] > parts[part_index].size_bytes:
                raise InvalidArgument("chunk.data", f"part {part_index} is longer than declared")
            hashes[part_index].update(data)
            nonce = os.urandom(12)
            aad = _chunk_aad(letter_id, part_index, sequence)
            pending.append(
                {
                    "letter_id": letter_id,
                    "part_index": part_index,
                    "sequence": sequence,
                    "ciphertext": nonce + cipher.encrypt(nonce, data, aad),
                }
            )
            sequence += 1
            unflushed += len(data)
            if unflushed >= FLUSH_BYTES:
                # Written chunks are in the transaction, not in memory.
                _write(db, [(models.Letter, unwritten_letter), (models.ContentChunk, pending)])
                pending, unflushed, unwritten_letter = [], 0, []
        _write(db, [(models.Letter, unwritten_letter), (models.ContentChunk, pending)])
        for i, part in enumerate(parts):
            if sizes[i] != part.size_bytes:
                raise InvalidArgument(
                    f"envelope.parts[{i}].size_bytes", "does not match the content sent"
                )
        digests, written = [], []
        for i, part in enumerate(parts):
            digest = hashes[i].hexdigest()
            written.append(
                models.LetterPart(
                    letter_id=letter_id,
                    part_index=i,
                    filename=part.filename,
                    media_type=part.media_type,
                    size_bytes=part.size_bytes,
                    sha256=bytes.fromhex(digest),
                )
            )
            digests.append(PartDigest(part.filename, part.media_type, part.size_bytes, digest))
        return tuple(digests), written

    # -- lifecycle, inside a caller's transaction ----------------------------------

    def _locked(self, db: DbSession, letter_id: uuid.UUID) -> tuple[models.Letter, Letter]:
        row = db.get(models.Letter, letter_id, with_for_update=True)
        if row is None:
            raise NotFound("no such letter")
        return row, Letter(
            state=row.state,
            deposit_time=row.deposit_time,
            notification_time=row.notification_time,
            decision_time=row.decision_time,
        )

    def _record(
        self,
        db: DbSession,
        row: models.Letter,
        letter: Letter,
        outcome: Outcome,
        reason: tuple[str, str] | None = None,
    ) -> models.Evidence:
        """Applies a state change and seals its evidence, in the caller's transaction."""
        (evidence,) = self._record_many(db, [(row, letter, outcome)], reason)
        return evidence

    def _record_many(
        self,
        db: DbSession,
        changes: list[tuple[models.Letter, Letter, Outcome]],
        reason: tuple[str, str] | None = None,
    ) -> list[models.Evidence]:
        """State changes and their evidence, sealed concurrently, in the caller's
        transaction; the parties and parts of all the letters are read at once."""
        if not changes:
            return []
        ids = [row.id for row, _, _ in changes]
        parties = _parties(
            db, (p for row, _, _ in changes for p in (row.sender_id, row.recipient_id))
        )
        digests: dict[uuid.UUID, list[PartDigest]] = {i: [] for i in ids}
        for part in db.scalars(
            select(models.LetterPart)
            .where(models.LetterPart.letter_id.in_(ids))
            .order_by(models.LetterPart.letter_id, models.LetterPart.part_index)
        ):
            digests[part.letter_id].append(
                PartDigest(part.filename, part.media_type, part.size_bytes, part.sha256.hex())
            )
        evidence = []
        for row, letter, outcome in changes:
            row.state = letter.state
            row.notification_time = letter.notification_time
            row.decision_time = letter.decision_time
            window = letter.window
            open_window = window and letter.state is not LetterState.NOTIFICATION_FAILED
            row.acceptance_deadline = window.closes_at if open_window and window else None
            evidence.append(
                self._document(
                    row,
                    outcome.event,
                    parties[row.sender_id].details,
                    parties[row.recipient_id].details,
                    tuple(digests[row.id]),
                    outcome.event_time,
                    reason,
                )
            )
        for item, seal in zip(
            evidence, self._signer.seal_many([e.document for e in evidence]), strict=True
        ):
            item.seal = seal
        _write(
            db,
            self._evidence_writes(
                [(row, e) for (row, _, _), e in zip(changes, evidence, strict=True)]
            ),
        )
        return evidence

    def record_notification(
        self, db: DbSession, letter_id: uuid.UUID, at: dt.datetime
    ) -> models.Evidence:
        """The recipient was told: NotificationForAcceptance; the window opens."""
        row, letter = self._locked(db, letter_id)
        evidence = self._record(db, row, letter, letter.notify(at))
        # A reminder is created on its day: before it, it is not waiting (the backlog age).
        reminders = [(day, at + dt.timedelta(days=day)) for day in self._policy.reminder_days]
        _write(
            db,
            [
                (
                    models.OutboxMessage,
                    [
                        models.outbox_row(letter_id, "reminder", {"day": str(d)}, due, due)
                        for d, due in reminders
                    ],
                )
            ],
        )
        return evidence

    def record_notification_failure(
        self, db: DbSession, letter_id: uuid.UUID, at: dt.datetime
    ) -> models.Evidence:
        row, letter = self._locked(db, letter_id)
        return self._record(db, row, letter, letter.fail_notification(at))

    def record_bounce(
        self, outbox_id: uuid.UUID, permanent: bool, diagnostic: str
    ) -> models.OutboxMessage:
        """A message our mail server accepted came back. A permanent bounce of
        the recipient's notice, before they answered, is a notification failure."""
        now = self._clock()
        with self._sessions.begin() as db:
            message = db.get(models.OutboxMessage, outbox_id, with_for_update=True)
            if message is None:
                raise NotFound("no notification with this Message-ID")
            message.last_error = f"bounced: {diagnostic}"[:1000]
            if permanent and message.state is not OutboxState.BOUNCED:
                message.state = OutboxState.BOUNCED
                if message.kind == "letter_waiting" and message.letter_id is not None:
                    row, letter = self._locked(db, message.letter_id)
                    if letter.state in (LetterState.DEPOSITED, LetterState.NOTIFIED):
                        self._record(db, row, letter, letter.fail_notification(now))
        return message

    def notifications_for(
        self, session: identity.Session, letter_id: uuid.UUID, page_size: int, page_token: str
    ) -> tuple[list[models.OutboxMessage], str]:
        """A letter's messages: all of them for its sender, the recipient's own
        (notice and reminders) for its recipient."""
        letter, _ = self.letter_for(session, letter_id)
        query = select(models.OutboxMessage).where(models.OutboxMessage.letter_id == letter_id)
        if uuid.UUID(session.party_id) != letter.sender_id:
            query = query.where(models.OutboxMessage.kind.in_(("letter_waiting", "reminder")))
        query = query.order_by(models.OutboxMessage.create_time, models.OutboxMessage.id)
        with self._sessions() as db:
            return paged(db, query, page_size, page_token)

    # -- the recipient's side ---------------------------------------------------------

    def _decide(
        self,
        session: identity.Session,
        letter_id: uuid.UUID,
        target: LetterState,
        reason: str | None,
    ) -> models.Letter:
        now = self._clock()
        identity.require_recipient(session, now)
        with self._sessions.begin() as db:
            row, letter = self._locked(db, letter_id)
            if row.recipient_id != uuid.UUID(session.party_id):
                raise NotFound("no such letter")
            if row.state is target:
                return row  # a retried decision gets the first result
            outcome = letter.accept(now) if target is LetterState.ACCEPTED else letter.refuse(now)
            reason_pair = ("refused_by_recipient", reason) if reason else None
            self._record(db, row, letter, outcome, reason_pair)
        return row

    def accept(self, session: identity.Session, letter_id: uuid.UUID) -> models.Letter:
        """ConsignmentAcceptance; the sender becomes visible and the content available."""
        return self._decide(session, letter_id, LetterState.ACCEPTED, None)

    def refuse(self, session: identity.Session, letter_id: uuid.UUID, reason: str) -> models.Letter:
        if len(reason) > 500:
            raise InvalidArgument("reason", "at most 500 characters")
        return self._decide(session, letter_id, LetterState.REFUSED, reason or None)

    def download(
        self, session: identity.Session, letter_id: uuid.UUID
    ) -> Iterator[tuple[int, bytes]]:
        """The decrypted content, chunk by chunk; ContentHandover is sealed once
        the last chunk has been handed over."""
        now = self._clock()
        identity.require_recipient(session, now)
        with self._sessions() as db:
            row = db.get(models.Letter, letter_id)
            if row is None or row.recipient_id != uuid.UUID(session.party_id):
                raise NotFound("no such letter")
            if row.state is not LetterState.ACCEPTED:
                raise FailedPrecondition("the content is available only after acceptance")
            if row.wrapped_key is None:
                raise FailedPrecondition("the content is no longer kept (retention period over)")
            key = self._signer.unwrap_key(row.wrapped_key, letter_key_context(row.id))
        return self._stream(letter_id, key)

    def _stream(self, letter_id: uuid.UUID, key: bytes) -> Iterator[tuple[int, bytes]]:
        cipher = AESGCM(key)
        with self._sessions() as db:
            chunks = db.execute(
                select(
                    models.ContentChunk.part_index,
                    models.ContentChunk.sequence,
                    models.ContentChunk.ciphertext,
                )
                .where(models.ContentChunk.letter_id == letter_id)
                .order_by(models.ContentChunk.part_index, models.ContentChunk.sequence)
                .execution_options(yield_per=8)  # at most 8 MB of chunks in memory
            )
            for part, sequence, sealed in chunks:
                nonce, ciphertext = sealed[:12], sealed[12:]
                yield part, cipher.decrypt(nonce, ciphertext, _chunk_aad(letter_id, part, sequence))
        now = self._clock()
        with self._sessions.begin() as db:
            row, letter = self._locked(db, letter_id)
            handed_over = db.scalar(
                select(models.Evidence.id).where(
                    models.Evidence.letter_id == letter_id,
                    models.Evidence.event == EvidenceEvent.CONTENT_HANDOVER,
                )
            )
            if handed_over is None:
                self._record(db, row, letter, letter.hand_over_content(now))

    def expire_due(self, batch: int = 500) -> int:
        """AcceptanceRejectionExpiry for letters whose window has closed, at most
        ``batch`` of them. Concurrent sweepers skip each other's rows."""
        now = self._clock()
        with self._sessions.begin() as db:
            due = list(
                db.scalars(
                    select(models.Letter)
                    .where(
                        models.Letter.state == LetterState.NOTIFIED,
                        models.Letter.acceptance_deadline <= now,
                    )
                    .order_by(models.Letter.acceptance_deadline)
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                )
            )
            changes = []
            for row in due:
                letter = Letter(
                    state=row.state,
                    deposit_time=row.deposit_time,
                    notification_time=row.notification_time,
                    decision_time=row.decision_time,
                )
                changes.append((row, letter, letter.expire(now)))
            self._record_many(db, changes)
            oldest = db.scalar(
                select(func.min(models.Letter.acceptance_deadline)).where(
                    models.Letter.state == LetterState.NOTIFIED,
                    models.Letter.acceptance_deadline <= now,
                )
            )
        for _, letter, _ in changes:
            window = letter.window
            assert window is not None
            NON_CLAIM_DELAY.observe((now - window.closes_at).total_seconds())
            if now >= window.non_claim_proof_due:
                PROOFS_LATE.inc()
        PENDING_NON_CLAIM.set((now - oldest).total_seconds() if oldest else 0)
        EXPIRED.inc(len(due))
        return len(due)

    def count_by_state(self) -> dict[LetterState, int]:
        """Letters per state, for the ``lre_letters`` gauge."""
        with self._sessions() as db:
            counts = dict.fromkeys(LetterState, 0)
            for state, count in db.execute(
                select(models.Letter.state, func.count()).group_by(models.Letter.state)
            ):
                counts[state] = count
        for state, count in counts.items():
            LETTERS.labels(state.value).set(count)
        return counts

    def purge_content(self, batch: int = 100) -> int:
        """Deletes the content of letters past their retention: the chunks and the
        wrapped key (without which no copy of the chunks can be read)."""
        now = self._clock()
        with self._sessions.begin() as db:
            due = list(
                db.scalars(
                    select(models.Letter)
                    .where(
                        models.Letter.state.in_(FINAL_STATES),
                        models.Letter.deposit_time <= now - self._policy.content_retention,
                        models.Letter.legal_hold.is_(False),
                        models.Letter.content_purge_time.is_(None),
                    )
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                )
            )
            for row in due:
                db.execute(
                    delete(models.ContentChunk).where(models.ContentChunk.letter_id == row.id)
                )
                row.wrapped_key = None
                row.content_purge_time = now
        PURGED.inc(len(due))
        return len(due)

    def set_legal_hold(
        self, letter_id: uuid.UUID, hold: bool
    ) -> tuple[models.Letter, list[models.LetterPart]]:
        """An operator's decision (a court order, a dispute): content on hold is
        kept past its retention until the hold is lifted."""
        with self._sessions.begin() as db:
            row = db.get(models.Letter, letter_id, with_for_update=True)
            if row is None:
                raise NotFound("no such letter")
            if row.content_purge_time is not None and hold:
                raise FailedPrecondition("the content was already deleted at the end of retention")
            row.legal_hold = hold
            record = LogRecord(str(row.id), row.state, self._clock(), legal_hold=hold)
            _write(db, [(models.LogEntry, [self._log_entry(record, None)])])
            return row, _parts(db, letter_id)

    # -- reading ---------------------------------------------------------------

    def letter_for(
        self, session: identity.Session, letter_id: uuid.UUID
    ) -> tuple[models.Letter, list[models.LetterPart]]:
        """The letter if the caller sent it or receives it; anyone else gets NOT_FOUND."""
        party = uuid.UUID(session.party_id)
        with self._sessions() as db:
            letter = db.get(models.Letter, letter_id)
            if letter is None or party not in (letter.sender_id, letter.recipient_id):
                raise NotFound("no such letter")
            return letter, _parts(db, letter_id)

    def letters_for(
        self,
        session: identity.Session,
        as_sender: bool,
        state: LetterState | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[models.Letter], str]:
        """The caller's letters, as sender or as recipient, newest first."""
        party = uuid.UUID(session.party_id)
        column = models.Letter.sender_id if as_sender else models.Letter.recipient_id
        query = select(models.Letter).where(column == party)
        if not as_sender:
            query = query.where(models.Letter.state != LetterState.REJECTED)
        if state is not None:
            query = query.where(models.Letter.state == state)
        query = query.order_by(models.Letter.deposit_time.desc(), models.Letter.id)
        with self._sessions() as db:
            return paged(db, query, page_size, page_token)

    def charges_for(
        self,
        session: identity.Session,
        start: dt.datetime | None,
        end: dt.datetime | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[models.Charge], str]:
        """What the caller owes, oldest first, for invoicing."""
        query = select(models.Charge).where(models.Charge.sender_id == uuid.UUID(session.party_id))
        if start is not None:
            query = query.where(models.Charge.create_time >= start)
        if end is not None:
            query = query.where(models.Charge.create_time < end)
        query = query.order_by(models.Charge.create_time, models.Charge.id)
        with self._sessions() as db:
            return paged(db, query, page_size, page_token)

    def evidence_for(
        self, session: identity.Session, letter_id: uuid.UUID
    ) -> list[models.Evidence]:
        """The sender reads every evidence of its letters (R53-2, one year at least)."""
        letter, _ = self.letter_for(session, letter_id)
        if uuid.UUID(session.party_id) != letter.sender_id:
            raise NotFound("no such letter")
        with self._sessions() as db:
            return list(
                db.scalars(
                    select(models.Evidence)
                    .where(models.Evidence.letter_id == letter_id)
                    .order_by(models.Evidence.event_time, models.Evidence.id)
                )
            )
