"""What changes a letter after its deposit: the recipient's answer, the
handover of the content, the notice sent or failed or bounced, an operator's
legal hold. Each change is one transaction with its sealed evidence."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator

from lre.server.adapters.signer import SignerClient, letter_key_context, mailing_key_context
from lre.server.domain import identity, journal
from lre.server.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from lre.server.domain.letters import EvidenceEvent, LetterState, OutboxKind, OutboxState
from lre.server.domain.log import LogKind, LogRecord
from lre.server.domain.records import EvidenceRecord, LetterRecord, MessageRecord, PartRecord
from lre.server.services.custody.content import decrypt_content
from lre.server.services.custody.content_store import ContentStore, DatabaseContent
from lre.server.services.custody.evidence import EvidenceRecorder
from lre.server.storage.outbox import new_message
from lre.server.storage.store import Store, Stores


class DecisionService:
    def __init__(
        self,
        stores: Stores,
        signer: SignerClient,
        evidence: EvidenceRecorder,
        reminder_days: tuple[int, ...],
        clock: Callable[[], dt.datetime],
        content: ContentStore | None = None,
    ) -> None:
        self._stores = stores
        self._signer = signer
        self._evidence = evidence
        self._reminder_days = reminder_days
        self._clock = clock
        self._content = content or DatabaseContent()

    # -- the recipient's side ------------------------------------------------

    def _decide(
        self,
        session: identity.Session,
        letter_id: uuid.UUID,
        target: LetterState,
        reason: str | None,
    ) -> LetterRecord:
        now = self._clock()
        identity.require_recipient(session, now)
        with self._stores.begin() as store:
            letter = store.letters.lock(letter_id)
            if letter.recipient_id != uuid.UUID(session.party_id):
                raise NotFound("no such letter")
            if letter.state is target:
                # A retried decision gets the first result; a refusal with
                # another reason is not that retry (one decision a letter).
                if target is LetterState.REFUSED and _stated_reason(store, letter_id) != reason:
                    raise FailedPrecondition("the letter is already refused, with another reason")
                return letter
            lifecycle = letter.lifecycle()
            outcome = (
                lifecycle.accept(now) if target is LetterState.ACCEPTED else lifecycle.refuse(now)
            )
            coded = ("refused_by_recipient", reason) if target is LetterState.REFUSED else None
            self._evidence.record(store, letter, lifecycle, outcome, coded, session)
            changed = store.letters.get(letter_id)
        assert changed is not None
        return changed

    def accept(self, session: identity.Session, letter_id: uuid.UUID) -> LetterRecord:
        """ConsignmentAcceptance; the sender becomes visible and the content available."""
        return self._decide(session, letter_id, LetterState.ACCEPTED, None)

    def refuse(self, session: identity.Session, letter_id: uuid.UUID, reason: str) -> LetterRecord:
        if len(reason) > 500:
            raise InvalidArgument("reason", "at most 500 characters")
        return self._decide(session, letter_id, LetterState.REFUSED, reason or None)

    def download(
        self, session: identity.Session, letter_id: uuid.UUID
    ) -> Iterator[tuple[int, bytes]]:
        """The decrypted content, chunk by chunk. The recipient's, once it
        accepted: ContentHandover is sealed once the last chunk has been handed
        over. The sender's copy of what it deposited, at any time while the
        content is kept, with any session of its own (a proofing that expired
        included, as for its proofs): journaled once the last chunk is out, as
        is each later download by the recipient."""
        now = self._clock()
        party = uuid.UUID(session.party_id)
        with self._stores.read() as store:
            letter = store.letters.get(letter_id)
        if letter is None or party not in (letter.sender_id, letter.recipient_id):
            raise NotFound("no such letter")
        as_recipient = party == letter.recipient_id
        if as_recipient:
            identity.require_recipient(session, now)
            if letter.state is not LetterState.ACCEPTED:
                raise FailedPrecondition("the content is available only after acceptance")
        if letter.state is LetterState.REJECTED:
            raise FailedPrecondition("a refused deposit keeps no content")
        if letter.wrapped_key is None:
            raise FailedPrecondition("the content is no longer kept (retention period over)")
        if letter.mailing_id is None:
            key = self._signer.unwrap_key(letter.wrapped_key, letter_key_context(letter.id))
        else:
            # A letter of a mailing reads the mailing's content, under the mailing's key.
            key = self._signer.unwrap_key(
                letter.wrapped_key, mailing_key_context(letter.mailing_id)
            )
        if as_recipient:
            return self._stream(session, letter, key)
        return self._sender_copy(letter, key)

    def _plaintext(self, letter: LetterRecord, key: bytes) -> Iterator[tuple[int, bytes]]:
        """The letter's content, decrypted as it is read from its store."""
        letter_id, mailing_id = letter.id, letter.mailing_id
        with self._stores.read() as store:
            if mailing_id is None:
                source = self._content.source(store.content, letter.content_object)
                yield from decrypt_content(source, letter_id, key)
            else:
                source = self._content.source(
                    store.mailings.content, store.objects.mailing_object(mailing_id)
                )
                yield from decrypt_content(source, mailing_id, key)

    def _sender_copy(self, letter: LetterRecord, key: bytes) -> Iterator[tuple[int, bytes]]:
        yield from self._plaintext(letter, key)
        now = self._clock()
        with self._stores.begin() as store:
            _journal_download(store, letter.id, "sender", now)

    def _stream(
        self,
        session: identity.Session,
        letter: LetterRecord,
        key: bytes,
    ) -> Iterator[tuple[int, bytes]]:
        letter_id = letter.id
        yield from self._plaintext(letter, key)
        now = self._clock()
        with self._stores.begin() as store:
            letter = store.letters.lock(letter_id)
            if not store.evidence.has(letter_id, EvidenceEvent.CONTENT_HANDOVER):
                lifecycle = letter.lifecycle()
                self._evidence.record(
                    store, letter, lifecycle, lifecycle.hand_over_content(now), None, session
                )
            else:
                # The handover is proved once; each later read of the content
                # is still an access to personal data an auditor can trace.
                _journal_download(store, letter_id, "recipient", now)

    # -- the notice ------------------------------------------------------------

    def record_notification(
        self, store: Store, letter_id: uuid.UUID, at: dt.datetime
    ) -> LetterRecord | None:
        """The recipient was told (R53-3 I) at ``at``, when the hand-off of the
        notice returned: NotificationForAcceptance, dated then even when sealed
        later (the signer was down); the window opens and the reminders are
        scheduled, in the caller's transaction. Returns the letter as it was
        before; None when its notice is already recorded, or its notification
        failed meanwhile (a bounce): nothing is written then."""
        letter = store.letters.lock(letter_id)
        if letter.state is not LetterState.DEPOSITED:
            return None
        lifecycle = letter.lifecycle()
        self._evidence.record(store, letter, lifecycle, lifecycle.notify(at))
        # A reminder is created on its day: before it, it is not waiting (the backlog age).
        reminders = [(day, at + dt.timedelta(days=day)) for day in self._reminder_days]
        store.outbox.add(
            new_message(letter_id, OutboxKind.REMINDER, {"day": str(d)}, due, due)
            for d, due in reminders
        )
        return letter

    def record_notification_failure(
        self, store: Store, letter_id: uuid.UUID, at: dt.datetime
    ) -> EvidenceRecord | None:
        """The notice could not be delivered: NotificationForAcceptanceFailure,
        in the caller's transaction; None when the letter no longer waits for
        its notice (already recorded)."""
        letter = store.letters.lock(letter_id)
        if letter.state is not LetterState.DEPOSITED:
            return None
        lifecycle = letter.lifecycle()
        return self._evidence.record(
            store,
            letter,
            lifecycle,
            lifecycle.fail_notification(at),
            ("notification_undeliverable", None),
        )

    def record_bounce(
        self, outbox_id: uuid.UUID, permanent: bool, diagnostic: str, actor: str = ""
    ) -> MessageRecord:
        """A message our mail server accepted came back. A permanent bounce of
        the recipient's notice, before they answered, is a notification failure."""
        now = self._clock()
        with self._stores.begin() as store:
            message = store.outbox.lock(outbox_id)
            if message is None:
                raise NotFound("no notification with this Message-ID")
            # A later temporary report does not replace the permanent one's
            # diagnostic: that one says why the notice never arrived.
            keep = message.state is OutboxState.BOUNCED and not permanent
            last_error = message.last_error if keep else f"bounced: {diagnostic}"[:1000]
            state = message.state
            if permanent and message.state is not OutboxState.BOUNCED:
                state = OutboxState.BOUNCED
                if message.kind is OutboxKind.LETTER_WAITING and message.letter_id is not None:
                    letter = store.letters.lock(message.letter_id)
                    if letter.state in (LetterState.DEPOSITED, LetterState.NOTIFIED):
                        lifecycle = letter.lifecycle()
                        self._evidence.record(
                            store,
                            letter,
                            lifecycle,
                            lifecycle.fail_notification(now),
                            ("notification_bounced", None),
                        )
            store.outbox.update(outbox_id, state=state, last_error=last_error)
            store.log.append_journal(journal.bounce(message, permanent, actor, now), now)
        return dataclasses.replace(message, state=state, last_error=last_error)

    # -- the operator's -------------------------------------------------------

    def set_legal_hold(
        self, letter_id: uuid.UUID, hold: bool, actor: str = ""
    ) -> tuple[LetterRecord, list[PartRecord]]:
        """An operator's decision (a court order, a dispute): content on hold is
        kept past its retention until the hold is lifted. The letter's entry
        replays the hold; the journal's names the operator (``actor``)."""
        with self._stores.begin() as store:
            letter = store.letters.lock(letter_id)
            if letter.content_purge_time is not None and hold:
                raise FailedPrecondition("the content was already deleted at the end of retention")
            store.letters.set_legal_hold(letter_id, hold)
            lift = True
            if letter.mailing_id is None:
                content_object = letter.content_object
            else:
                content_object = store.objects.mailing_object(letter.mailing_id)
                # A mailing's object stays held while any of its letters is.
                lift = not store.objects.mailing_held(letter.mailing_id)
            if hold:
                # On the object before the commit: a hold the store refused is no hold.
                self._content.hold(content_object, True)
            now = self._clock()
            store.log.append(
                [(LogRecord(str(letter.id), letter.state, now, legal_hold=hold), None)], now
            )
            kind = LogKind.LEGAL_HOLD_SET if hold else LogKind.LEGAL_HOLD_RELEASED
            store.log.append_journal(
                journal.entry(kind, f"letters/{letter.id}", now, actor=actor), now
            )
            changed = dataclasses.replace(letter, legal_hold=hold), store.letters.parts(letter_id)
        if not hold and (letter.mailing_id is None or lift):
            # Lifted after the commit: a failure keeps the object held longer,
            # never shorter, and a retry of the call lifts it.
            self._content.hold(content_object, False)
        return changed


def _journal_download(store: Store, letter_id: uuid.UUID, role: str, now: dt.datetime) -> None:
    store.log.append_journal(
        journal.entry(LogKind.CONTENT_DOWNLOADED, f"letters/{letter_id}", now, role=role), now
    )


def _stated_reason(store: Store, letter_id: uuid.UUID) -> str | None:
    """The reason the recipient stated when it refused the letter, as sealed."""
    for evidence in store.evidence.of_letter(letter_id):
        if evidence.event is EvidenceEvent.CONSIGNMENT_REJECTION:
            stated: str | None = json.loads(evidence.document).get("reason")
            return stated
    return None
