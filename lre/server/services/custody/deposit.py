"""Deposit: one transaction. The letter, its encrypted content, the sealed
proof of deposit, the notice to send and the charge commit together or not
at all; a refused deposit commits only its SubmissionRejection evidence. A
retried deposit (the same sender and request_id) gets the first result."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import Counter
from sqlalchemy.exc import IntegrityError

from lre.server.adapters.signer import ContentKeys
from lre.server.domain import identity
from lre.server.domain.errors import (
    AuthenticationRequired,
    DepositRefused,
    InvalidArgument,
    NotFound,
    RequestConflict,
)
from lre.server.domain.evidence import PartDigest, PartyDetails
from lre.server.domain.letters import EvidenceEvent, LetterState, OutboxKind
from lre.server.domain.records import ChargeRecord, LetterRecord, PartRecord
from lre.server.services.custody.content import content_digests, encrypt_content
from lre.server.services.custody.evidence import EvidenceRecorder
from lre.server.services.custody.policy import CustodyPolicy
from lre.server.services.identity import IdentityService
from lre.server.storage.outbox import new_message
from lre.server.storage.store import Store, Stores

DEPOSITS = Counter("lre_letters_deposited", "Deposits, by outcome.", ["outcome"])
for _outcome in ("accepted", "rejected"):
    DEPOSITS.labels(_outcome)

MAX_PARTS = 100
REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass(frozen=True)
class DeclaredPart:
    filename: str
    media_type: str
    size_bytes: int


def _check_envelope(request_id: str, parts: list[DeclaredPart]) -> None:
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


class DepositService:
    def __init__(
        self,
        stores: Stores,
        identities: IdentityService,
        content_keys: ContentKeys,
        evidence: EvidenceRecorder,
        policy: CustodyPolicy,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._stores = stores
        self._identities = identities
        self._content_keys = content_keys
        self._evidence = evidence
        self._policy = policy
        self._clock = clock

    def deposit(
        self,
        session: identity.Session,
        request_id: str,
        recipient_id: uuid.UUID,
        parts: list[DeclaredPart],
        chunks: Iterable[tuple[int, bytes]],
    ) -> tuple[LetterRecord, list[PartRecord]]:
        """The deposited letter and its parts; refusals raise DepositRefused."""
        now = self._clock()
        _check_envelope(request_id, parts)
        sender_id = uuid.UUID(session.party_id)
        try:
            return self._deposit_once(
                session, sender_id, request_id, recipient_id, parts, chunks, now
            )
        except IntegrityError:
            # The request_id was used before (a retry), or raced in from another
            # call and won: (sender, request_id) is unique, so the first letter is
            # the answer. Looking it up only on conflict saves every deposit a query.
            with self._stores.read() as store:
                existing = store.letters.by_request(sender_id, request_id)
                if existing is None:
                    raise
                return self._replay(store, existing, recipient_id, parts, chunks)

    def _deposit_once(
        self,
        session: identity.Session,
        sender_id: uuid.UUID,
        request_id: str,
        recipient_id: uuid.UUID,
        parts: list[DeclaredPart],
        chunks: Iterable[tuple[int, bytes]],
        now: dt.datetime,
    ) -> tuple[LetterRecord, list[PartRecord]]:
        """The whole deposit in one transaction: lookups, checks and writes."""
        refusal: DepositRefused | None = None
        with self._stores.begin() as store:
            found = store.letters.parties((sender_id, recipient_id))
            if recipient_id not in found or sender_id not in found:
                raise NotFound("no such party")
            (sender, _), (recipient, professional) = found[sender_id], found[recipient_id]
            try:
                identity.require_sender(session, now, self._policy.sender_min_level)
                identity.require_consent(
                    identity.Recipient(str(recipient_id), professional),
                    # Only a consumer's consent matters; a professional's is not looked up.
                    not professional
                    and self._identities.has_consent_in(store.db, recipient_id, sender_id),
                )
                self._check_size(parts)
            except (AuthenticationRequired, DepositRefused) as exc:
                reason = exc.reason if isinstance(exc, DepositRefused) else "sender_not_identified"
                field = exc.field if isinstance(exc, DepositRefused) else "authorization"
                letter = self._new_letter(
                    uuid.uuid4(),
                    None,
                    sender_id,
                    recipient_id,
                    request_id,
                    now,
                    LetterState.REJECTED,
                )
                evidence = self._evidence.seal(
                    self._evidence.document(
                        letter,
                        EvidenceEvent.SUBMISSION_REJECTION,
                        sender,
                        recipient,
                        (),
                        now,
                        (reason, str(exc)),
                        sender_session=session,
                    )
                )
                store.letters.add(letter)
                self._evidence.write(store, [(letter.state, evidence)])
                refusal = DepositRefused(reason, str(exc), field, f"letters/{letter.id}")
            else:
                content_key = self._content_keys.take()
                letter = self._new_letter(
                    content_key.letter_id,
                    content_key.wrapped,
                    sender_id,
                    recipient_id,
                    request_id,
                    now,
                    LetterState.DEPOSITED,
                )
                letter, written = self._accept(
                    store, session, letter, content_key.key, sender, recipient, parts, chunks, now
                )
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
    def _new_letter(
        letter_id: uuid.UUID,
        wrapped_key: bytes | None,
        sender_id: uuid.UUID,
        recipient_id: uuid.UUID,
        request_id: str,
        now: dt.datetime,
        state: LetterState,
    ) -> LetterRecord:
        return LetterRecord(
            id=letter_id,
            reference="".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(12)),
            sender_id=sender_id,
            recipient_id=recipient_id,
            request_id=request_id,
            state=state,
            deposit_time=now,
            wrapped_key=wrapped_key,
        )

    def _accept(
        self,
        store: Store,
        session: identity.Session,
        letter: LetterRecord,
        key: bytes,
        sender: PartyDetails,
        recipient: PartyDetails,
        parts: list[DeclaredPart],
        chunks: Iterable[tuple[int, bytes]],
        now: dt.datetime,
    ) -> tuple[LetterRecord, list[PartRecord]]:
        # The letter first: its chunks refer to it.
        store.letters.add(letter)
        digests = encrypt_content(
            store.content, letter.id, key, [p.size_bytes for p in parts], chunks
        )
        written = [
            PartRecord(letter.id, i, p.filename, p.media_type, p.size_bytes, digest)
            for i, (p, digest) in enumerate(zip(parts, digests, strict=True))
        ]
        # Accepted once the content is stored (an upload takes its time, and the
        # seal's timestamp must agree with this, see check_times); the notice is
        # due from then, so that the notification is never dated before it.
        accepted = self._clock()
        # That is the deposit's time too (R53-2: the date of the deposit), so
        # that the letter, its evidence and the log name one instant.
        letter = dataclasses.replace(letter, deposit_time=accepted)
        store.letters.set_deposit_time(letter.id, accepted)
        evidence = self._evidence.seal(
            self._evidence.document(
                letter,
                EvidenceEvent.SUBMISSION_ACCEPTANCE,
                sender,
                recipient,
                tuple(
                    PartDigest(p.filename, p.media_type, p.size_bytes, p.sha256.hex())
                    for p in written
                ),
                accepted,
                sender_session=session,
            )
        )
        store.letters.add_parts(written)
        notice = new_message(
            letter.id,
            OutboxKind.LETTER_WAITING,
            {"letter": f"letters/{letter.id}"},
            accepted,
            accepted,
        )
        self._evidence.write(store, [(letter.state, evidence)], [notice])
        store.charges.add(
            ChargeRecord(
                uuid.uuid4(),
                letter.sender_id,
                letter.id,
                self._policy.tariff_minor,
                self._policy.currency,
                now,
            )
        )
        return letter, written

    @staticmethod
    def _replay(
        store: Store,
        letter: LetterRecord,
        recipient_id: uuid.UUID,
        parts: list[DeclaredPart],
        chunks: Iterable[tuple[int, bytes]],
    ) -> tuple[LetterRecord, list[PartRecord]]:
        """A retried deposit gets the first result: the letter, or the same
        refusal. The same request_id with other content is refused, naming
        what differs: a caller's bug must not pass for a retry."""
        if letter.recipient_id != recipient_id:
            raise RequestConflict(
                "envelope.recipient", "this request_id was used for a letter to another recipient"
            )
        if letter.state is LetterState.REJECTED:
            # A refused deposit kept no parts to compare.
            evidence = store.evidence.of_letter(letter.id)
            document = json.loads(evidence[0].document) if evidence else {}
            raise DepositRefused(
                document.get("reasonCode", "rejected"),
                document.get("reason", "deposit refused"),
                letter=f"letters/{letter.id}",
            )
        stored = store.letters.parts(letter.id)
        if [(p.filename, p.media_type, p.size_bytes) for p in stored] != [
            (p.filename, p.media_type, p.size_bytes) for p in parts
        ]:
            raise RequestConflict(
                "envelope.parts", "this request_id was used for a letter with other parts"
            )
        digests = content_digests([p.size_bytes for p in parts], chunks)
        for i, (part, digest) in enumerate(zip(stored, digests, strict=True)):
            if part.sha256 != digest:
                raise RequestConflict(
                    f"envelope.parts[{i}]", "this request_id was used for other content"
                )
        return letter, stored
