"""The outbox dispatcher: claims due messages, hands each to the mail server,
records the hand-off (the package's docstring says how, and what it
guarantees)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter, Gauge
from sqlalchemy.exc import DBAPIError

from lre.server.adapters.mail import MailTransport, PermanentFailure, TemporaryFailure
from lre.server.domain.errors import DependencyUnavailable
from lre.server.domain.letters import OutboxKind, OutboxState
from lre.server.domain.records import MessageRecord
from lre.server.domain.window import PARIS, paris_midnight
from lre.server.services.custody.decisions import DecisionService
from lre.server.services.notification import NotificationService
from lre.server.storage.outbox import URGENT
from lre.server.storage.store import Store, Stores
from lre.server.workers.outbox.compose import compose
from lre.server.workers.outbox.notices import NOTICE_GRACE, seal_notice
from lre.server.workers.signer_watch import SignerOutage

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
        outage: SignerOutage,
        lease: dt.timedelta = dt.timedelta(minutes=5),
        give_way: Callable[[], object] = lambda: None,
    ) -> None:
        """``outage``: shared by the process's workers; while the signer is
        down, proofs are not claimed and notices are not sealed.
        ``lease``: how long a claim holds a message (longer than a hand-off
        can take: several times the SMTP timeout); also how long before Paris
        midnight no notice is composed. ``give_way``: called before each
        proof or reminder; returns once the process's API leaves room
        (lre.runtime.inflight)."""
        self._stores = stores
        self._transport = transport
        self._notifications = notifications
        self._decisions = decisions
        self._retry = retry
        self._clock = clock
        self._outage = outage
        self._lease = lease
        self._give_way = give_way
        # Hand-offs the database refused to record: recorded first at the next step.
        self._unrecorded: list[_Sent] = []

    # -- the steps -------------------------------------------------------------

    def claim(self, batch: int) -> list[MessageRecord]:
        """Step 1: up to ``batch`` due messages, SENDING under a lease, committed."""
        now = self._clock()
        # While the signer is down, proofs (their PDF is signed) stay queued.
        waiting = (OutboxKind.PROOF,) if self._outage.down(now) else ()
        with self._stores.begin() as store:
            claimed = store.outbox.claim(now, batch, self._lease, waiting)
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
            # A notice starts a recipient's window and a code has someone
            # waiting at a login: neither waits for the API, a proof or a
            # reminder does.
            if message.kind not in URGENT:
                self._give_way()
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
        if message.kind is OutboxKind.PROOF and self._outage.down(now):
            # Claimed before the signer was found down: queued again, claimed
            # once it is back. Not an attempt.
            self._put_back(message, now)
            return None
        try:
            # Reads that need no snapshot (compose): without a transaction's
            # round trips.
            with self._stores.peek() as store:
                make = compose(self._notifications, store, message, now)
            email = make()
        except LookupError as exc:
            # Rows this version cannot compose stay failed, visibly, rather than lost.
            self._settle(message, state=OutboxState.FAILED, last_error=str(exc))
            return None
        except DependencyUnavailable as exc:
            # A proof's PDF waits for the signer (it is not claimed while the
            # signer is down); the other messages go on. Not an attempt.
            self._outage.failed(exc, self._clock())
            self._put_back(message, now, last_error=str(exc))
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
            # Only the notice has legal weight: its failure is an evidence, sealed now
            # (its row locked before the letter, as everywhere), or by the NoticeSealer.
            assert message.letter_id is not None
            try:
                with self._stores.begin() as store:
                    store.outbox.sealed(message.id)
                    self._decisions.record_notification_failure(store, message.letter_id, now)
            except DependencyUnavailable as exc:
                self._outage.failed(exc, self._clock())
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
        # A recipient's notice: its evidence is sealed with the record.
        notified = message.letter_id if message.kind is OutboxKind.LETTER_WAITING else None
        sealing = notified is not None and not self._outage.down(self._clock())
        with self._stores.begin() as store:
            recorded = store.outbox.settle(
                message,
                state=OutboxState.SENT,
                sent_time=handed_at,
                last_error=None,
                payload=payload,
                # Sealed below: nothing more due (else the sealer's after the grace).
                next_attempt_time=None if sealing else handed_at + NOTICE_GRACE,
            )
            if recorded and sealing and notified is not None:
                self._seal_notice(store, message.id, notified, handed_at)
        if not recorded:
            logger.warning("outbox claim lost", extra={"outbox_id": str(message.id)})
            return
        SENT.labels(message.kind).inc()
        logger.info(
            "notification sent", extra={"outbox_id": str(message.id), "kind": message.kind.value}
        )
        composed_day = sent.composed_at.astimezone(PARIS).date()
        if notified is not None and handed_at.astimezone(PARIS).date() != composed_day:
            # The hand-off outlasted the quiet period: the notice printed a
            # last day one before the recorded window's (the recipient has a
            # day more than told, never less).
            logger.error(
                "notice handed off after Paris midnight", extra={"outbox_id": str(message.id)}
            )

    def _seal_notice(
        self, store: Store, outbox_id: uuid.UUID, letter_id: uuid.UUID, handed_at: dt.datetime
    ) -> None:
        """The notice's NotificationForAcceptance, in the transaction that
        records its hand-off, under a savepoint: if sealing fails (the signer
        down, a statement of its own refused), only the sealing is undone, the
        hand-off is recorded all the same, due to the NoticeSealer after
        NOTICE_GRACE; never a resend. Only a lost connection is raised, as
        for the hand-off alone (``_record`` retries it)."""
        try:
            with store.savepoint():
                seal_notice(self._decisions, store, letter_id, handed_at)
        except Exception as exc:
            if isinstance(exc, DBAPIError) and exc.connection_invalidated:
                raise
            store.outbox.update(outbox_id, next_attempt_time=handed_at + NOTICE_GRACE)
            if isinstance(exc, DependencyUnavailable):
                self._outage.failed(exc, self._clock())
            logger.warning(
                "notice sealing deferred",
                extra={"outbox_id": str(outbox_id), "error": type(exc).__name__},
            )

    def measure_backlog(self) -> None:
        """Messages due and not sent (a reminder waiting for its day is not late)."""
        now = self._clock()
        with self._stores.read() as store:
            count, oldest = store.outbox.backlog(now)
        BACKLOG.set(count)
        OLDEST.set((now - oldest).total_seconds() if oldest else 0)
