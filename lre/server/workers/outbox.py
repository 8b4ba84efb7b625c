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
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.domain.letters import LetterState, OutboxState
from lre.server.mail import MailTransport, PermanentFailure, TemporaryFailure
from lre.server.services.custody import CustodyService
from lre.server.services.notification import NotificationService
from lre.server.storage import models

log = logging.getLogger("lre.outbox")

SENT = Counter("lre_notifications_sent", "Outbox messages delivered to the mail server.", ["kind"])
FAILURES = Counter(
    "lre_notification_failures", "Outbox deliveries that failed.", ["kind", "permanent"]
)
# Every kind of message the outbox carries; their series exist from the start.
KINDS = ("letter_waiting", "reminder", "proof", "email_code")
for _kind in KINDS:
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
    def __init__(
        self,
        sessions: sessionmaker[DbSession],
        transport: MailTransport,
        notifications: NotificationService,
        custody: CustodyService,
        retry: RetryPolicy,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._sessions = sessions
        self._transport = transport
        self._notifications = notifications
        self._custody = custody
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
        with self._sessions.begin() as db:
            # One flush at the end, not one before every read of the batch: the
            # reads are of rows this batch does not insert.
            db.autoflush = False
            messages = list(
                db.scalars(
                    select(models.OutboxMessage)
                    .where(
                        models.OutboxMessage.state == OutboxState.PENDING,
                        models.OutboxMessage.next_attempt_time <= now,
                    )
                    .order_by(models.OutboxMessage.next_attempt_time)
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                )
            )
            for message in messages:
                self._deliver(db, message, now)
        return len(messages)

    def _compose(
        self, db: DbSession, message: models.OutboxMessage, now: dt.datetime
    ) -> Message | None:
        """The e-mail for an outbox row; None when it is no longer needed."""
        if message.kind == "email_code":
            party = db.get(models.Party, uuid.UUID(message.payload["party"]))
            if party is None:
                raise LookupError("the party of this code is gone")
            return self._notifications.email_code(message, party, now)
        letter = db.get(models.Letter, message.letter_id) if message.letter_id else None
        if letter is None or message.kind not in KINDS:
            raise LookupError(f"cannot compose {message.kind}")
        if message.kind == "proof":
            evidence = db.get(models.Evidence, uuid.UUID(message.payload["evidence"]))
            sender = db.get(models.Party, letter.sender_id)
            assert evidence is not None and sender is not None
            return self._notifications.proof(message, letter, sender, evidence)
        recipient = db.get(models.Party, letter.recipient_id)
        assert recipient is not None
        if message.kind == "reminder":
            if letter.state is not LetterState.NOTIFIED:
                return None  # answered or expired: nothing to remind
            return self._notifications.reminder(message, letter, recipient, now)
        return self._notifications.letter_waiting(message, letter, recipient, now)

    def _deliver(self, db: DbSession, message: models.OutboxMessage, now: dt.datetime) -> None:
        try:
            email = self._compose(db, message, now)
        except LookupError as exc:
            # Rows this version cannot compose stay failed, visibly, rather than lost.
            message.state = OutboxState.FAILED
            message.last_error = str(exc)
            return
        if email is None:
            db.delete(message)
            return
        message.attempts += 1
        try:
            try:
                self._transport.send(email)
            except (TemporaryFailure, PermanentFailure):
                raise
            except Exception as exc:
                # An unforeseen transport error: retried with backoff, not in a tight loop.
                log.exception("mail transport error")
                raise TemporaryFailure(type(exc).__name__) from None
        except TemporaryFailure as exc:
            FAILURES.labels(message.kind, "false").inc()
            message.last_error = str(exc)
            if message.attempts < self._retry.max_attempts:
                message.next_attempt_time = now + self._retry.delay(message.attempts)
                log.warning(
                    "notification deferred",
                    extra={"outbox_id": str(message.id), "attempts": message.attempts},
                )
                return
            self._fail(db, message, now)
            return
        except PermanentFailure as exc:
            FAILURES.labels(message.kind, "true").inc()
            message.last_error = str(exc)
            self._fail(db, message, now)
            return
        message.state = OutboxState.SENT
        message.sent_time = now
        message.last_error = None
        if message.kind == "email_code":
            # Sent: the encrypted code has no more reason to be kept.
            message.payload = {k: v for k, v in message.payload.items() if k != "code"}
        SENT.labels(message.kind).inc()
        if message.kind == "letter_waiting" and message.letter_id is not None:
            evidence = self._custody.record_notification(db, message.letter_id, now)
            letter = db.get(models.Letter, evidence.letter_id)
            assert letter is not None
            TO_NOTIFICATION.observe((now - letter.deposit_time).total_seconds())
        log.info(
            "notification sent",
            extra={"outbox_id": str(message.id), "kind": message.kind},
        )

    def _fail(self, db: DbSession, message: models.OutboxMessage, now: dt.datetime) -> None:
        message.state = OutboxState.FAILED
        if message.kind == "letter_waiting":
            # Only the recipient's notice has legal weight: its failure is an evidence.
            assert message.letter_id is not None
            self._custody.record_notification_failure(db, message.letter_id, now)
        log.warning("notification failed", extra={"outbox_id": str(message.id)})

    def measure_backlog(self) -> None:
        """Messages due and not sent (a reminder waiting for its day is not late)."""
        with self._sessions() as db:
            count, oldest = db.execute(
                select(func.count(), func.min(models.OutboxMessage.create_time)).where(
                    models.OutboxMessage.state == OutboxState.PENDING,
                    models.OutboxMessage.create_time <= self._clock(),
                )
            ).one()
        BACKLOG.set(count)
        OLDEST.set((self._clock() - oldest).total_seconds() if oldest else 0)

    def step(self) -> bool:
        """Sends what is due; refreshes the backlog gauges when nothing is."""
        # SQLite holds its one write lock while a batch is sent: one at a time there.
        sqlite = self._sessions.kw["bind"].dialect.name == "sqlite"
        if (self.dispatch(1) if sqlite else self.dispatch()) > 0:
            return True
        self.measure_backlog()
        return False
