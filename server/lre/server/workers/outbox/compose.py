"""What each kind of outbox message says, from the rows it names."""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Callable
from email.message import Message

from lre.server.domain.letters import LetterState, OutboxKind
from lre.server.domain.records import MessageRecord
from lre.server.services.notification import NotificationService
from lre.server.storage.store import Store


def compose(
    notifications: NotificationService, store: Store, message: MessageRecord, now: dt.datetime
) -> Callable[[], Message | None]:
    """What the e-mail for an outbox row needs, read through ``store``
    (each read sees what is committed, as in a transaction at PostgreSQL's
    READ COMMITTED); the e-mail itself (None when no longer needed) is made
    by the returned call, after it: a proof's PDF is rendered and signed then,
    with no transaction open (on SQLite, a read holds the write lock)."""
    if message.kind is OutboxKind.EMAIL_CODE:
        party_id = uuid.UUID(message.payload["party"])
        party = store.letters.parties([party_id]).get(party_id)
        if party is None:
            raise LookupError("the party of this code is gone")
        return functools.partial(notifications.email_code, message, party[0], now)
    letter = store.letters.get(message.letter_id) if message.letter_id else None
    if letter is None:
        raise LookupError(f"cannot compose {message.kind.value}")
    parties = store.letters.parties((letter.sender_id, letter.recipient_id))
    if message.kind is OutboxKind.PROOF:
        evidence = store.evidence.get(uuid.UUID(message.payload["evidence"]))
        assert evidence is not None
        return functools.partial(
            notifications.proof,
            message,
            letter,
            parties[letter.sender_id][0],
            parties[letter.recipient_id][0],
            evidence,
        )
    recipient = parties[letter.recipient_id][0]
    if message.kind is OutboxKind.REMINDER:
        if letter.state is not LetterState.NOTIFIED:
            return lambda: None  # answered or expired: nothing to remind
        return functools.partial(notifications.reminder, message, letter, recipient, now)
    if letter.state is not LetterState.DEPOSITED:
        # Nothing sends a notice twice but a resend, and that finds the
        # letter still deposited: left failed, visibly, not sent.
        raise LookupError("the letter no longer waits for its notice")
    return functools.partial(notifications.letter_waiting, message, letter, recipient, now)
