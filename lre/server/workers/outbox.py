"""The outbox dispatcher: sends what state changes wrote to the outbox.

Each message is claimed with FOR UPDATE SKIP LOCKED (PostgreSQL), sent, and
recorded in the same transaction, so any number of dispatchers may run and a
message goes out once. A crash after sending and before recording leaves the
message pending: it is sent again with the same Message-ID, never lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message

from prometheus_client import Counter, Gauge, Histogram

from lre.server.adapters.mail import MailTransport, PermanentFailure, TemporaryFailure
from lre.server.domain.errors import DependencyUnavailable
from lre.server.domain.letters import LetterState, OutboxKind, OutboxState
from lre.server.domain.records import MessageRecord
from lre.server.services.custody.decisions import DecisionService
from lre.server.services.notification import NotificationService
from lre.server.storage.store import Store, Stores

logger = logging.getLogger("lre.outbox")

SENT = Counter("lre_notifications_sent", "Outbox messages delivered to the mail server.", ["kind"])
FAILURES = Counter(
    "lre_notification_failures", "Outbox deliveries that failed.", ["kind", "permanent"]
)
# Every kind of message the outbox carries: their series exist from the start.
for _kind in OutboxKind:
    SENT.labels(_kind)
    for _permanent in ("true", "false"):
        FAILURES.labels(_kind, _permanent)
BACKLOG = Gauge(
    "lre_outbox_backlog", "Outbox messages waiting to be sent.", multiprocess_mode="livemax"
)
OLDEST = Gauge(
    "lre_outbox_oldest_age_seconds",
    "Age of the oldest message waiting in the outbox.",
    multiprocess_mode="livemax",
)
TO_NOTIFICATION = Histogram(
    "lre_deposit_to_notification_seconds",
    "From deposit to the recipient's notification handed to the mail server.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 86400),
)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 12
    first_delay: dt.timedelta = dt.timedelta(seconds=30)
    max_delay: dt.timedelta = dt.timedelta(hours=1)

    def delay(self, attempts: int) -> dt.timedelta:
        delay: dt.timedelta = self.first_delay * (2 ** (attempts - 1))
        return min(delay, self.max_delay)


class OutboxDispatcher:
    name = "outbox"

    def __init__(
        self,
        stores: Stores,
        transport: MailTransport,
        notifications: NotificationService,
        decisions: DecisionService,
        retry: RetryPolicy,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._stores = stores
        self._transport = transport
        self._notifications = notifications
        self._decisions = decisions
        self._retry = retry
        self._clock = clock

    def dispatch_one(self) -> bool:
        """Sends the next due message; False when none is due."""
        return self.dispatch(1) > 0

    def dispatch(self, batch: int = 8) -> int:
        """Claims up to ``batch`` due messages and sends them in one transaction;
        how many it claimed. A crash before the commit resends them all, each
        under its own Message-ID again: never a loss, at worst a duplicate."""
        now = self._clock()
        with self._stores.begin() as store:
            messages = store.outbox.claim_due(now, batch)
            for message in messages:
                self._deliver(store, message, now)
        return len(messages)

    def _compose(self, store: Store, message: MessageRecord, now: dt.datetime) -> Message | None:
        """The e-mail for an outbox row; None when it is no longer needed."""
        if message.kind is OutboxKind.EMAIL_CODE:
            party_id = uuid.UUID(message.payload["party"])
            party = store.letters.parties([party_id]).get(party_id)
            if party is None:
                raise LookupError("the party of this code is gone")
            return self._notifications.email_code(message, party[0], now)
        letter = store.letters.get(message.letter_id) if message.letter_id else None
        if letter is None:
            raise LookupError(f"cannot compose {message.kind.value}")
        parties = store.letters.parties((letter.sender_id, letter.recipient_id))
        if message.kind is OutboxKind.PROOF:
            evidence = store.evidence.get(uuid.UUID(message.payload["evidence"]))
            assert evidence is not None
            return self._notifications.proof(
                message,
                letter,
                parties[letter.sender_id][0],
                parties[letter.recipient_id][0],
                evidence,
            )
        recipient = parties[letter.recipient_id][0]
        if message.kind is OutboxKind.REMINDER:
            if letter.state is not LetterState.NOTIFIED:
                return None  # answered or expired: nothing to remind
            return self._notifications.reminder(message, letter, recipient, now)
        return self._notifications.letter_waiting(message, letter, recipient, now)

    def _deliver(self, store: Store, message: MessageRecord, now: dt.datetime) -> None:
        try:
            email = self._compose(store, message, now)
        except LookupError as exc:
            # Rows this version cannot compose stay failed, visibly, rather than lost.
            store.outbox.update(message.id, state=OutboxState.FAILED, last_error=str(exc))
            return
        except DependencyUnavailable as exc:
            # A proof's PDF waits for the signer; the other messages of the batch go on.
            store.outbox.update(
                message.id, last_error=str(exc), next_attempt_time=now + self._retry.first_delay
            )
            return
        if email is None:
            store.outbox.remove(message.id)
            return
        attempts = message.attempts + 1
        try:
            try:
                self._transport.send(email)
            except (TemporaryFailure, PermanentFailure):
                raise
            except Exception as exc:
                # An unforeseen transport error: retried with backoff, not in a tight loop.
                logger.exception("mail transport error")
                raise TemporaryFailure(type(exc).__name__) from None
        except TemporaryFailure as exc:
            FAILURES.labels(message.kind, "false").inc()
            if attempts < self._retry.max_attempts:
                store.outbox.update(
                    message.id,
                    attempts=attempts,
                    last_error=str(exc),
                    next_attempt_time=now + self._retry.delay(attempts),
                )
                logger.warning(
                    "notification deferred",
                    extra={"outbox_id": str(message.id), "attempts": attempts},
                )
                return
            self._fail(store, message, attempts, str(exc), now)
            return
        except PermanentFailure as exc:
            FAILURES.labels(message.kind, "true").inc()
            self._fail(store, message, attempts, str(exc), now)
            return
        payload = message.payload
        if message.kind is OutboxKind.EMAIL_CODE:
            # Sent: the encrypted code has no more reason to be kept.
            payload = {k: v for k, v in payload.items() if k != "code"}
        store.outbox.update(
            message.id,
            state=OutboxState.SENT,
            attempts=attempts,
            sent_time=now,
            last_error=None,
            payload=payload,
        )
        SENT.labels(message.kind).inc()
        if message.kind is OutboxKind.LETTER_WAITING and message.letter_id is not None:
            letter = self._decisions.record_notification(store, message.letter_id, now)
            TO_NOTIFICATION.observe((now - letter.deposit_time).total_seconds())
        logger.info(
            "notification sent",
            extra={"outbox_id": str(message.id), "kind": message.kind.value},
        )

    def _fail(
        self, store: Store, message: MessageRecord, attempts: int, error: str, now: dt.datetime
    ) -> None:
        store.outbox.update(
            message.id, state=OutboxState.FAILED, attempts=attempts, last_error=error
        )
        if message.kind is OutboxKind.LETTER_WAITING:
            # Only the recipient's notice has legal weight: its failure is an evidence.
            assert message.letter_id is not None
            self._decisions.record_notification_failure(store, message.letter_id, now)
        logger.warning("notification failed", extra={"outbox_id": str(message.id)})

    def measure_backlog(self) -> None:
        """Messages due and not sent (a reminder waiting for its day is not late)."""
        now = self._clock()
        with self._stores.read() as store:
            count, oldest = store.outbox.backlog(now)
        BACKLOG.set(count)
        OLDEST.set((now - oldest).total_seconds() if oldest else 0)

    def step(self) -> bool:
        """Sends what is due; refreshes the backlog gauges when nothing is."""
        # SQLite holds its one write lock while a batch is sent: one at a time there.
        if (self.dispatch(1) if self._stores.sqlite else self.dispatch()) > 0:
            return True
        self.measure_backlog()
        return False
