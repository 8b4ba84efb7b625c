"""Deposit: the letter, its encrypted content, the sealed proof of deposit,
the notice to send and the charge commit together, in one short transaction,
or not at all; a refused deposit commits only its SubmissionRejection
evidence. The content is read from the client before, into a spool, with no
transaction open (a client that stalls holds no lock). A retried deposit (the
same sender and request_id) gets the first result."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lre.server.adapters.signer import ContentKey, ContentKeys
from lre.server.domain import identity
from lre.server.domain.errors import (
    AuthenticationRequired,
    DepositRefused,
    NotFound,
    RequestConflict,
    WriteConflict,
)
from lre.server.domain.evidence import Delegate, PartyDetails
from lre.server.domain.letters import EvidenceEvent, LetterState
from lre.server.domain.records import LetterRecord, PartRecord
from lre.server.services.custody.content import ContentSink, content_digests, spool_content
from lre.server.services.custody.content_store import ContentStore, DatabaseContent
from lre.server.services.custody.evidence import EvidenceRecorder
from lre.server.services.custody.intake import (
    DEPOSITS,
    DeclaredPart,
    Intake,
    check_declared_digests,
    check_envelope,
    check_same_content,
    check_same_delegate,
    new_letter,
)
from lre.server.services.custody.policy import CustodyPolicy
from lre.server.storage.objects import Owner
from lre.server.storage.store import Store, Stores

# Why a deposit is refused: the sender not identified enough, or the deposit itself.
Refusal = AuthenticationRequired | DepositRefused


class DepositService:
    def __init__(
        self,
        stores: Stores,
        content_keys: ContentKeys,
        evidence: EvidenceRecorder,
        policy: CustodyPolicy,
        clock: Callable[[], dt.datetime],
        spool_dir: str | None = None,
        content: ContentStore | None = None,
    ) -> None:
        """``spool_dir``: where a deposit's content waits, encrypted, for its
        transaction once larger than content.SPOOL_MEMORY_BYTES (None: the
        system's temporary directory); ``content``: where it is kept (the
        database by default)."""
        self._stores = stores
        self._content_keys = content_keys
        self._evidence = evidence
        self._intake = Intake(evidence, policy)
        self._clock = clock
        self._spool_dir = spool_dir
        self._content = content or DatabaseContent()

    def deposit(
        self,
        session: identity.Session,
        request_id: str,
        recipient_id: uuid.UUID,
        parts: list[DeclaredPart],
        chunks: Iterable[tuple[int, bytes]],
        delegate: Delegate | None = None,
    ) -> tuple[LetterRecord, list[PartRecord]]:
        """The deposited letter and its parts; refusals raise DepositRefused.
        ``delegate``: who acted for the sender, named in its proof of deposit.

        Three steps, so that no transaction waits on the client: the checks in
        a short read; the client's content read into a spool (encrypted as it
        arrives, no transaction open); then one short transaction that checks
        again what may have changed meanwhile (a consent withdrawn) and writes
        the letter, its content, its sealed proof of deposit, its notice and
        its charge, or only the SubmissionRejection."""
        now = self._clock()
        check_envelope(request_id, parts)
        sender_id = uuid.UUID(session.party_id)
        sizes = [p.size_bytes for p in parts]
        # The checks before the content is read: what is refused is refused at once.
        with self._stores.peek() as store:
            professionals = store.letters.professionals((sender_id, recipient_id))
            if sender_id not in professionals or recipient_id not in professionals:
                raise NotFound("no such party")
            refused = self._refusal(
                store, session, sender_id, recipient_id, professionals[recipient_id], parts, now
            )
        content: tuple[ContentKey, ContentSink] | None = None
        committed = False
        try:
            if refused is None:
                content_key = self._content_keys.take()
                content = (content_key, self._content.sink(self._spool_dir))
                spool_content(content_key.letter_id, content_key.key, sizes, chunks, content[1])
                # Every byte stored (an object completed) before the letter can be accepted.
                content[1].finish()
                check_declared_digests(parts, content[1].digests)
            try:
                letter, written = self._record(
                    session,
                    sender_id,
                    request_id,
                    recipient_id,
                    parts,
                    now,
                    refused,
                    content,
                    delegate,
                )
            except WriteConflict:
                # The request_id was used before (a retry), or raced in from
                # another call and won: (sender, request_id) is unique, so the
                # first letter is the answer. Looking it up only on conflict
                # saves every deposit a query.
                with self._stores.read() as store:
                    existing = store.letters.by_request(sender_id, request_id)
                    if existing is None:
                        raise
                    first = _First.of(store, existing)
                spooled = content[1].digests if content else None

                def digests() -> list[bytes]:
                    # Read with no transaction open: the content may still be arriving.
                    return spooled if spooled is not None else content_digests(sizes, chunks)

                return first.replay(recipient_id, parts, digests, delegate)
            if content is not None:
                committed = True
                self._content.committed(
                    Owner(letter.id), content[1].object_key, letter.deposit_time
                )
            return letter, written
        finally:
            if content is not None:
                if not committed:
                    content[1].discard()
                content[1].close()

    def _refusal(
        self,
        store: Store,
        session: identity.Session,
        sender_id: uuid.UUID,
        recipient_id: uuid.UUID,
        professional: bool,
        parts: list[DeclaredPart],
        now: dt.datetime,
    ) -> Refusal | None:
        """Why this deposit is refused, if it is."""
        try:
            self._intake.check_sender(session, now)
            identity.require_consent(
                identity.Recipient(str(recipient_id), professional),
                # Only a consumer's consent matters; a professional's is not looked up.
                not professional
                and recipient_id in store.consents.consenting(sender_id, [recipient_id]),
            )
            self._intake.check_size(parts)
        except (AuthenticationRequired, DepositRefused) as exc:
            return exc
        return None

    def _record(
        self,
        session: identity.Session,
        sender_id: uuid.UUID,
        request_id: str,
        recipient_id: uuid.UUID,
        parts: list[DeclaredPart],
        now: dt.datetime,
        refused: Refusal | None,
        content: tuple[ContentKey, ContentSink] | None,
        delegate: Delegate | None = None,
    ) -> tuple[LetterRecord, list[PartRecord]]:
        """The deposit's one write transaction: the checks again, then the
        letter or its refusal. Nothing in it waits on the client. ``refused``:
        the first checks' refusal (then there is no ``content``), which stands."""
        with self._stores.begin() as store:
            found = store.letters.parties((sender_id, recipient_id))
            if sender_id not in found or recipient_id not in found:
                raise NotFound("no such party")
            (sender, _), (recipient, professional) = found[sender_id], found[recipient_id]
            sender = dataclasses.replace(sender, delegate=delegate)
            # The sender's session is judged as it was when the call began
            # (``now``): an upload may outlast it.
            refused = refused or self._refusal(
                store, session, sender_id, recipient_id, professional, parts, now
            )
            # The content is in and the checks hold: this is the deposit's time
            # (R53-2: the date of the deposit), which the letter, its evidence
            # and the log name and the seal's timestamp must agree with (see
            # check_times). The notice is due from then, so that the
            # notification is never dated before it.
            accepted = self._clock()
            if refused is None:
                assert content is not None
                content_key, spool = content
                letter = new_letter(
                    content_key.letter_id,
                    content_key.wrapped,
                    sender_id,
                    recipient_id,
                    request_id,
                    accepted,
                    LetterState.DEPOSITED,
                    content_object=spool.stored(),
                )
                # The letter first: its chunks refer to it.
                store.letters.add(letter)
                self._content.keep(store, store.content, Owner(letter.id), accepted, spool)
                written, _ = self._intake.accept(
                    store, session, sender, [(letter, recipient)], parts, spool.digests
                )
            else:
                letter = new_letter(
                    uuid.uuid4(),
                    None,
                    sender_id,
                    recipient_id,
                    request_id,
                    accepted,
                    LetterState.REJECTED,
                )
                self._reject(store, session, letter, sender, recipient, refused)
        if refused is None:
            DEPOSITS.labels("accepted").inc()
            return letter, written
        DEPOSITS.labels("rejected").inc()
        if isinstance(refused, DepositRefused):
            raise DepositRefused(refused.code, str(refused), refused.field, f"letters/{letter.id}")
        raise DepositRefused(
            "sender_not_identified", str(refused), "authorization", f"letters/{letter.id}"
        )

    def _reject(
        self,
        store: Store,
        session: identity.Session,
        letter: LetterRecord,
        sender: PartyDetails,
        recipient: PartyDetails,
        refused: Refusal,
    ) -> None:
        """A refused deposit: the letter's row and its sealed SubmissionRejection, nothing else."""
        reason = refused.code if isinstance(refused, DepositRefused) else "sender_not_identified"
        evidence = self._evidence.seal(
            self._evidence.document(
                letter,
                EvidenceEvent.SUBMISSION_REJECTION,
                sender,
                recipient,
                (),
                letter.deposit_time,
                (reason, str(refused)),
                sender_session=session,
            )
        )
        store.letters.add(letter)
        self._evidence.write(store, [(letter.state, evidence)])


@dataclass(frozen=True)
class _First:
    """The first deposit of a request_id, as a retry is compared with it."""

    letter: LetterRecord
    parts: list[PartRecord]
    # Its SubmissionAcceptance or SubmissionRejection document (a refused
    # deposit kept no parts): what it said of the sender.
    submission: dict[str, Any]

    @staticmethod
    def of(store: Store, letter: LetterRecord) -> _First:
        submission = store.evidence.submission(letter.id)
        parts = [] if letter.state is LetterState.REJECTED else store.letters.parts(letter.id)
        return _First(letter, parts, json.loads(submission) if submission else {})

    def replay(
        self,
        recipient_id: uuid.UUID,
        parts: list[DeclaredPart],
        digests: Callable[[], list[bytes]],
        delegate: Delegate | None,
    ) -> tuple[LetterRecord, list[PartRecord]]:
        """A retried deposit gets the first result: the letter, or the same
        refusal. The same request_id with other content is refused, naming
        what differs: a caller's bug must not pass for a retry. ``digests``:
        the retry's content, read only when it is to be compared."""
        letter = self.letter
        if letter.recipient_id != recipient_id:
            raise RequestConflict(
                "envelope.recipient", "this request_id was used for a letter to another recipient"
            )
        check_same_delegate(self.submission, delegate)
        if letter.state is LetterState.REJECTED:
            raise DepositRefused(
                self.submission.get("reasonCode", "rejected"),
                self.submission.get("reason", "deposit refused"),
                letter=f"letters/{letter.id}",
            )
        stored = self.parts
        check_same_content(
            [(p.filename, p.media_type, p.size_bytes, p.sha256) for p in stored],
            parts,
            digests,
            "letter",
        )
        return letter, stored
