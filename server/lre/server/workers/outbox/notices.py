"""The notice sealer: the evidence of recipients' notices that left while the
signer was down.

The dispatcher (``dispatcher``) seals a notice's
NotificationForAcceptance in the transaction that records its hand-off; when
the sealing fails (the signer down) it leaves the notice SENT with the
instant of its hand-off, and this worker seals it later, dated then
(docs/evidence.md, "Time", bounds how much later). Nothing is ever sent
again here."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

from lre.server.domain.errors import DependencyUnavailable
from lre.server.domain.evidence import EvidenceTimeMismatch
from lre.server.domain.letters import OutboxState
from lre.server.domain.records import MessageRecord
from lre.server.services.custody.decisions import DecisionService
from lre.server.storage.store import Store, Stores
from lre.server.workers.signer_watch import SignerOutage

logger = logging.getLogger("lre.outbox")

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
TO_NOTIFICATION = Histogram(
    "lre_deposit_to_notification_seconds",
    "From deposit to the recipient's notification handed to the mail server.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 86400),
)
# How long after its hand-off the sealer looks at a notice the dispatcher
# could not seal (the dispatcher seals each notice as it leaves, unless the
# signer is down); also how often the sealer looks (or every outbox
# interval, if longer).
NOTICE_GRACE = dt.timedelta(seconds=2)


def seal_notice(
    decisions: DecisionService, store: Store, letter_id: uuid.UUID, handed_at: dt.datetime
) -> bool:
    """NotificationForAcceptance dated at the notice's hand-off, in ``store``'s
    transaction; False when it is already recorded, or the notification failed
    meanwhile (a bounce): nothing is written then."""
    letter = decisions.record_notification(store, letter_id, handed_at)
    if letter is None:
        return False
    TO_NOTIFICATION.observe((handed_at - letter.deposit_time).total_seconds())
    return True


class NoticeSealer:
    """Seals the evidence of recipients' notices that left while the signer
    was down: NotificationForAcceptance dated at the hand-off (the row's
    ``sent_time``), or NotificationForAcceptanceFailure for a notice given up.
    Nothing is ever sent again here. While the signer is down (``outage``,
    shared with the dispatchers) it waits; a notice whose seal is refused
    (past NOTICE_SEAL_BOUND, a clock wrong) is tried again after ``refused_delay``."""

    name = "notices"

    def __init__(
        self,
        stores: Stores,
        decisions: DecisionService,
        clock: Callable[[], dt.datetime],
        outage: SignerOutage,
        refused_delay: dt.timedelta = dt.timedelta(minutes=1),
        batch: int = 16,
    ) -> None:
        self._stores = stores
        self._decisions = decisions
        self._clock = clock
        self._outage = outage
        self._refused_delay = refused_delay
        self._batch = batch

    def step(self) -> bool:
        """Seals what is due, one notice per transaction; True when it went
        through a whole batch (there may be more). Then measures what is left."""
        if not self._outage.down(self._clock()) and all(
            self._seal_next() for _ in range(self._batch)
        ):
            return True
        now = self._clock()
        with self._stores.read() as store:
            oldest = store.outbox.oldest_unrecorded_notice()
        UNSEALED.set((now - oldest).total_seconds() if oldest else 0)
        return False

    def _seal_next(self) -> bool:
        """The next notice due; False when none is, or the signer is down."""
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
                    if seal_notice(self._decisions, store, message.letter_id, message.sent_time):
                        NOTICES_LATE.inc()
                else:
                    self._decisions.record_notification_failure(store, message.letter_id, now)
                store.outbox.sealed(message.id)
            return True
        except EvidenceTimeMismatch:
            if message is None:
                raise
            # Past NOTICE_SEAL_BOUND, or a clock is wrong: an operator decides.
            logger.error("notice cannot be sealed", extra={"outbox_id": str(message.id)})
            with self._stores.begin() as store:
                store.outbox.update(message.id, next_attempt_time=now + self._refused_delay)
            return True
        except DependencyUnavailable:
            if message is None:
                raise
            # The notice stays due; this process's workers leave the signer alone.
            logger.warning("notice sealing deferred", extra={"outbox_id": str(message.id)})
            self._outage.met_down(self._clock())  # from the failure, not the call's start
            return False
