"""The outbox dispatcher: sends what state changes wrote to the outbox.

Three steps, each its own short transaction, none held while the mail server
is talked to (on SQLite a transaction holds the one write lock):

1. **Claim.** Due messages become SENDING with their attempt counted and a
   lease (``claimed_until``), committed; rows another dispatcher holds are
   skipped (FOR UPDATE SKIP LOCKED), so any number of dispatchers may run.
2. **Send**, with the Message-ID of the outbox row (the same on every attempt).
3. **Record**, with the instant the hand-off *returned*: SENT and its
   ``sent_time``. For a recipient's notice that instant is the notification
   (R53-3 I): NotificationForAcceptance is sealed dated then, and the 15-day
   window opens from its Paris day. If the signer is down, the message stays
   SENT (never sent again) and ``NoticeSealer`` seals the notice later, dated
   at the hand-off (docs/evidence.md, "Time", bounds how much later).

A temporary failure puts the message back with its own backoff; a permanent
one, or too many attempts, fails it (and a notice's failure is an evidence).
Each message is settled on its own: one failing message never holds others.

**Delivery guarantee: at least once, and at most one resend per crash.** A
dispatcher that dies between the hand-off and the record leaves the message
SENDING; once its lease runs out another dispatcher (or the same one,
restarted) claims it again and sends it once more, with the same Message-ID,
so the receiving side can tell it is the same message. Such a message reads
``resends`` > 0 (and ``attempts`` counts every hand-off tried), and each is
counted in ``lre_notifications_resent_total``. A record that fails while the
process lives (the database cut) is retried from memory, not resent. The lease
must outlast a hand-off (several SMTP timeouts): a message of a batch is
handed off only while at least half its lease is left (else it goes back to
the queue unsent), and a hand-off that overran the rest finds its claim taken
and records nothing (settle returns False): the message may then have gone
twice, and that too reads ``resends``. A graceful stop (SIGTERM) finishes the
batch in hand: no resend.

**Printed deadline and recorded window agree.** The notice prints the last
day of the window counted from the day it is composed; it is recorded from
the day its hand-off returned. No notice is composed during the last
``lease`` before midnight, Paris time: those wait until just after midnight,
so both days are the same.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.exc import DBAPIError

from lre.server.adapters.mail import MailTransport, PermanentFailure, TemporaryFailure
from lre.server.domain.errors import DependencyUnavailable
from lre.server.domain.evidence import EvidenceTimeMismatch
from lre.server.domain.letters import LetterState, OutboxKind, OutboxState
from lre.server.domain.records import MessageRecord
from lre.server.domain.window import PARIS, paris_midnight
from lre.server.services.custody.decisions import DecisionService
from lre.server.services.notification import NotificationService
from lre.server.storage.store import Store, Stores

logger = logging.getLogger("lre.outbox")

SENT = Counter("lre_notifications_sent", "Outbox messages delivered to the mail server.", ["kind"])
FAILURES = Counter(
    "lre_notification_failures", "Outbox deliveries that failed.", ["kind", "permanent"]
)
RESENT = Counter(
    "lre_notifications_resent",
    "Outbox messages sent again because a dispatcher died (or overran its lease)"
    " between their hand-off and its record.",
    ["kind"],
)
NOTICES_LATE = Counter(
    "lre_notices_sealed_late",
    "Recipients' notices whose NotificationForAcceptance was sealed after their"
    " hand-off by the notice sealer (the signer was down when they left).",
)
UNSEALED = Gauge(
    "lre_notices_unsealed_oldest_age_seconds",
    "Age of the oldest recipient's notice handed off whose NotificationForAcceptance"
    " is not sealed yet (the signer was down); 0 when none.",
    multiprocess_mode="livemax",
)
# Every kind of message the outbox carries: their series exist from the start.
for _kind in OutboxKind:
    SENT.labels(_kind)
    RESENT.labels(_kind)
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
# How long a notice waits after its hand-off before the sealer looks at it:
# the dispatcher seals it right away unless the signer is down.
NOTICE_GRACE = dt.timedelta(seconds=10)
# After the signer failed a dispatcher, how long it leaves it alone: notices
# go unsealed to the NoticeSealer and proofs (their PDF is signed) wait, rather
# than each costing the signer client's retries (seconds) while it is down.
SIGNER_PAUSE = dt.timedelta(seconds=10)
# A record the database refused (connection cut) is tried again this often
# before the dispatcher keeps it in memory for its next step.
RECORD_RETRIES = (0.2, 1.0, 3.0)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 12
    first_delay: dt.timedelta = dt.timedelta(seconds=30)
    max_delay: dt.timedelta = dt.timedelta(hours=1)

    def delay(self, attempts: int) -> dt.timedelta:
        delay: dt.timedelta = self.first_delay * (2 ** (attempts - 1))
        return min(delay, self.max_delay)


def quiet_until(now: dt.datetime, quiet: dt.timedelta) -> dt.datetime | None:
    """Within ``quiet`` of midnight, Paris time: that midnight (UTC), when a
    notice composed now might be handed off tomorrow; otherwise None."""
    midnight = paris_midnight(now.astimezone(PARIS).date() + dt.timedelta(days=1))
    return midnight if midnight - now <= quiet else None


@dataclass(frozen=True)
class _Sent:
    """A hand-off that returned and is not recorded yet."""

    message: MessageRecord
    handed_at: dt.datetime
    composed_at: dt.datetime


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
        lease: dt.timedelta = dt.timedelta(minutes=5),
    ) -> None:
        """``lease``: how long a claim holds a message (longer than a hand-off
        can take: several times the SMTP timeout); also how long before Paris
        midnight no notice is composed."""
        self._stores = stores
        self._transport = transport
        self._notifications = notifications
        self._decisions = decisions
        self._retry = retry
        self._clock = clock
        self._lease = lease
        # Hand-offs the database refused to record: recorded first at the next step.
        self._unrecorded: list[_Sent] = []
        # Until when the signer is left alone (SIGNER_PAUSE).
        self._signer_down_until: dt.datetime | None = None

    def _signer_down(self, now: dt.datetime) -> bool:
        return self._signer_down_until is not None and now < self._signer_down_until

    # -- the steps -------------------------------------------------------------

    def claim(self, batch: int) -> list[MessageRecord]:
        """Step 1: up to ``batch`` due messages, SENDING under a lease, committed."""
        with self._stores.begin() as store:
            claimed = store.outbox.claim(self._clock(), batch, self._lease)
        for message, resend in claimed:
            if resend:
                RESENT.labels(message.kind).inc()
                logger.warning(
                    "notification resent after a dispatcher died holding it",
                    extra={"outbox_id": str(message.id), "resends": message.resends},
                )
        return [message for message, _ in claimed]

    def deliver(self, message: MessageRecord) -> None:
        """Steps 2 and 3 for one claimed message; whatever happens, the message
        is settled (or left to its lease) and the next one goes."""
        try:
            sent = self._send(message)
        except DBAPIError:
            # The database went away while composing or settling, before any
            # hand-off: the message goes back at once (not an attempt), or if
            # the database is still away, when the claim's lease runs out.
            logger.exception("outbox database error", extra={"outbox_id": str(message.id)})
            with contextlib.suppress(DBAPIError):
                self._put_back(message, self._clock())
            return
        except Exception:
            # A message this version cannot handle must not hold the others.
            logger.exception("outbox message not sent", extra={"outbox_id": str(message.id)})
            with contextlib.suppress(DBAPIError):  # else its lease brings it back
                self._settle(
                    message,
                    state=OutboxState.PENDING,
                    last_error="internal error",
                    next_attempt_time=self._clock() + self._retry.delay(message.attempts),
                )
            return
        if sent is not None:
            self._record(sent)

    def dispatch(self, batch: int = 8) -> int:
        """Records what is owed, then claims up to ``batch`` due messages and
        delivers each; how many it claimed."""
        self._record_owed()
        messages = self.claim(batch)
        for message in messages:
            self.deliver(message)
        return len(messages)

    def dispatch_one(self) -> bool:
        """Sends the next due message; False when none is due."""
        return self.dispatch(1) > 0

    def step(self) -> bool:
        """Sends what is due; refreshes the backlog gauges when nothing is."""
        if self.dispatch() > 0:
            return True
        self.measure_backlog()
        return False

    # -- sending ---------------------------------------------------------------

    def _compose(
        self, store: Store, message: MessageRecord, now: dt.datetime
    ) -> Callable[[], Message | None]:
        """What the e-mail for an outbox row needs, read in ``store``'s
        transaction; the e-mail itself (None when no longer needed) is made by
        the returned call, after it: a proof's PDF is rendered and signed then,
        with no transaction open (on SQLite, a read holds the write lock)."""
        if message.kind is OutboxKind.EMAIL_CODE:
            party_id = uuid.UUID(message.payload["party"])
            party = store.letters.parties([party_id]).get(party_id)
            if party is None:
                raise LookupError("the party of this code is gone")
            return functools.partial(self._notifications.email_code, message, party[0], now)
        letter = store.letters.get(message.letter_id) if message.letter_id else None
        if letter is None:
            raise LookupError(f"cannot compose {message.kind.value}")
        parties = store.letters.parties((letter.sender_id, letter.recipient_id))
        if message.kind is OutboxKind.PROOF:
            evidence = store.evidence.get(uuid.UUID(message.payload["evidence"]))
            assert evidence is not None
            return functools.partial(
                self._notifications.proof,
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
            return functools.partial(self._notifications.reminder, message, letter, recipient, now)
        if letter.state is not LetterState.DEPOSITED:
            # Nothing sends a notice twice but a resend, and that finds the
            # letter still deposited: left failed, visibly, not sent.
            raise LookupError("the letter no longer waits for its notice")
        return functools.partial(
            self._notifications.letter_waiting, message, letter, recipient, now
        )

    def _settle(self, message: MessageRecord, **values: object) -> None:
        with self._stores.begin() as store:
            if not store.outbox.settle(message, **values):
                logger.warning("outbox claim lost", extra={"outbox_id": str(message.id)})

    def _put_back(
        self, message: MessageRecord, until: dt.datetime, last_error: str | None = None
    ) -> None:
        """Back to the queue unsent, due ``until``: not an attempt."""
        values: dict[str, object] = {"last_error": last_error} if last_error else {}
        self._settle(
            message,
            state=OutboxState.PENDING,
            attempts=message.attempts - 1,
            next_attempt_time=until,
            **values,
        )

    def _send(self, message: MessageRecord) -> _Sent | None:
        now = self._clock()
        assert message.claimed_until is not None
        if now > message.claimed_until - self._lease / 2:
            # The batch took long (a slow relay): too little of the lease is
            # left for this hand-off to end before another worker may take the
            # message as stranded. Back to the queue, unsent; not an attempt.
            self._put_back(message, now)
            return None
        if message.kind is OutboxKind.LETTER_WAITING:
            midnight = quiet_until(now, self._lease)
            if midnight is not None:
                # Composed now, handed off maybe after midnight: the printed last
                # day and the recorded window would differ. Not an attempt.
                self._put_back(message, midnight)
                return None
        if message.kind is OutboxKind.PROOF and self._signer_down(now):
            assert self._signer_down_until is not None
            self._put_back(message, self._signer_down_until)
            return None
        try:
            with self._stores.read() as store:
                compose = self._compose(store, message, now)
            email = compose()
        except LookupError as exc:
            # Rows this version cannot compose stay failed, visibly, rather than lost.
            self._settle(message, state=OutboxState.FAILED, last_error=str(exc))
            return None
        except DependencyUnavailable as exc:
            # A proof's PDF waits for the signer; the other messages go on. Not an attempt.
            self._signer_down_until = now + SIGNER_PAUSE
            self._put_back(message, now + self._retry.first_delay, last_error=str(exc))
            return None
        if email is None:
            with self._stores.begin() as store:
                if store.outbox.settle(message, state=OutboxState.SENT, sent_time=now):
                    store.outbox.remove(message.id)
            return None
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
            if message.attempts < self._retry.max_attempts:
                self._settle(
                    message,
                    state=OutboxState.PENDING,
                    last_error=str(exc),
                    next_attempt_time=self._clock() + self._retry.delay(message.attempts),
                )
                logger.warning(
                    "notification deferred",
                    extra={"outbox_id": str(message.id), "attempts": message.attempts},
                )
                return None
            self._fail(message, str(exc))
            return None
        except PermanentFailure as exc:
            FAILURES.labels(message.kind, "true").inc()
            self._fail(message, str(exc))
            return None
        # The instant the mail server took it: the notification time (domain.md 8).
        return _Sent(message, self._clock(), now)

    def _fail(self, message: MessageRecord, error: str) -> None:
        now = self._clock()
        with self._stores.begin() as store:
            if not store.outbox.settle(
                message, state=OutboxState.FAILED, last_error=error, next_attempt_time=now
            ):
                return
        logger.warning("notification failed", extra={"outbox_id": str(message.id)})
        if message.kind is OutboxKind.LETTER_WAITING:
            # Only the recipient's notice has legal weight: its failure is an
            # evidence, sealed now, or by the NoticeSealer if the signer is down.
            assert message.letter_id is not None
            try:
                with self._stores.begin() as store:
                    self._decisions.record_notification_failure(store, message.letter_id, now)
            except DependencyUnavailable:
                logger.warning(
                    "notification failure evidence deferred: signer unavailable",
                    extra={"outbox_id": str(message.id)},
                )

    # -- recording ---------------------------------------------------------------

    def _record(self, sent: _Sent) -> None:
        """Step 3; a database error is retried a few times, then the hand-off is
        kept in memory for the next step: a cut connection never resends."""
        for pause in (*RECORD_RETRIES, None):
            try:
                self._record_once(sent)
                return
            except DBAPIError:
                if pause is None:
                    logger.exception(
                        "outbox record failed, kept for the next step",
                        extra={"outbox_id": str(sent.message.id)},
                    )
                    self._unrecorded.append(sent)
                    return
                time.sleep(pause)

    def _record_owed(self) -> None:
        owed, self._unrecorded = self._unrecorded, []
        for sent in owed:
            self._record(sent)

    def _record_once(self, sent: _Sent) -> None:
        message, handed_at = sent.message, sent.handed_at
        payload = message.payload
        if message.kind is OutboxKind.EMAIL_CODE:
            # Sent: the encrypted code has no more reason to be kept.
            payload = {k: v for k, v in payload.items() if k != "code"}
        with self._stores.begin() as store:
            recorded = store.outbox.settle(
                message,
                state=OutboxState.SENT,
                sent_time=handed_at,
                last_error=None,
                payload=payload,
                # For a notice: when the sealer looks at it if sealing below fails.
                next_attempt_time=handed_at + NOTICE_GRACE,
            )
        if not recorded:
            logger.warning("outbox claim lost", extra={"outbox_id": str(message.id)})
            return
        SENT.labels(message.kind).inc()
        logger.info(
            "notification sent", extra={"outbox_id": str(message.id), "kind": message.kind.value}
        )
        if message.kind is OutboxKind.LETTER_WAITING and message.letter_id is not None:
            if handed_at.astimezone(PARIS).date() != sent.composed_at.astimezone(PARIS).date():
                # The hand-off outlasted the quiet period: the notice printed a
                # last day one before the recorded window's (the recipient has a
                # day more than told, never less).
                logger.error(
                    "notice handed off after Paris midnight", extra={"outbox_id": str(message.id)}
                )
            self._seal_notice(message.letter_id, handed_at, message.id)

    def _seal_notice(
        self, letter_id: uuid.UUID, handed_at: dt.datetime, outbox_id: uuid.UUID
    ) -> None:
        if self._signer_down(self._clock()):
            return  # the NoticeSealer's, after NOTICE_GRACE
        try:
            with self._stores.begin() as store:
                letter = self._decisions.record_notification(store, letter_id, handed_at)
        except Exception as exc:
            if isinstance(exc, DependencyUnavailable):
                self._signer_down_until = self._clock() + SIGNER_PAUSE
            # Sent and recorded as sent: the NoticeSealer seals it when it can,
            # never a resend. Usually the signer is down (DependencyUnavailable).
            logger.warning(
                "notice sealing deferred",
                extra={"outbox_id": str(outbox_id), "error": type(exc).__name__},
            )
            return
        if letter is not None:
            TO_NOTIFICATION.observe((handed_at - letter.deposit_time).total_seconds())

    def measure_backlog(self) -> None:
        """Messages due and not sent (a reminder waiting for its day is not late)."""
        now = self._clock()
        with self._stores.read() as store:
            count, oldest = store.outbox.backlog(now)
        BACKLOG.set(count)
        OLDEST.set((now - oldest).total_seconds() if oldest else 0)


class NoticeSealer:
    """Seals the evidence of recipients' notices that left while the signer
    was down: NotificationForAcceptance dated at the hand-off (the row's
    ``sent_time``), or NotificationForAcceptanceFailure for a notice given up.
    Each notice has its own backoff (doubling with its age, up to
    ``max_delay``); nothing is ever sent again here."""

    name = "notices"

    def __init__(
        self,
        stores: Stores,
        decisions: DecisionService,
        clock: Callable[[], dt.datetime],
        max_delay: dt.timedelta = dt.timedelta(minutes=1),
        batch: int = 16,
    ) -> None:
        self._stores = stores
        self._decisions = decisions
        self._clock = clock
        self._max_delay = max_delay
        self._batch = batch

    def step(self) -> bool:
        """Seals what is due, one notice per transaction; True when it went
        through a whole batch (there may be more). Then measures what is left."""
        if all(self._seal_next() for _ in range(self._batch)):
            return True
        now = self._clock()
        with self._stores.read() as store:
            oldest = store.outbox.oldest_unrecorded_notice()
        UNSEALED.set((now - oldest).total_seconds() if oldest else 0)
        return False

    def _seal_next(self) -> bool:
        """The next notice due; False when none is."""
        now = self._clock()
        message: MessageRecord | None = None
        try:
            with self._stores.begin() as store:
                due = store.outbox.unrecorded_notices(now, 1)
                if not due:
                    return False
                (message,) = due
                assert message.letter_id is not None
                if message.state is OutboxState.SENT:
                    assert message.sent_time is not None
                    letter = self._decisions.record_notification(
                        store, message.letter_id, message.sent_time
                    )
                    if letter is not None:
                        NOTICES_LATE.inc()
                        TO_NOTIFICATION.observe(
                            (message.sent_time - letter.deposit_time).total_seconds()
                        )
                else:
                    self._decisions.record_notification_failure(store, message.letter_id, now)
            return True
        except DependencyUnavailable as exc:  # EvidenceTimeMismatch included
            if message is None:
                raise
            if isinstance(exc, EvidenceTimeMismatch):
                # Past NOTICE_SEAL_BOUND, or a clock is wrong: an operator decides.
                logger.error("notice cannot be sealed", extra={"outbox_id": str(message.id)})
            else:
                logger.warning("notice sealing deferred", extra={"outbox_id": str(message.id)})
            with self._stores.begin() as store:
                store.outbox.update(message.id, next_attempt_time=now + self._backoff(message, now))
            # The signer is down: the other notices wait for the next step.
            return isinstance(exc, EvidenceTimeMismatch)

    def _backoff(self, message: MessageRecord, now: dt.datetime) -> dt.timedelta:
        """The notice's age (so the delays double), between 1 s and ``max_delay``."""
        since = message.sent_time or now
        return min(max(now - since, dt.timedelta(seconds=1)), self._max_delay)
