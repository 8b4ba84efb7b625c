"""NotificationService over gRPC."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import grpc

from lre.runtime.inflight import idle
from lre.server.api.auth import actor, session_of
from lre.server.api.convert import EVENTS, STATES, timestamp
from lre.server.api.errors import domain_errors
from lre.server.api.names import parse_id
from lre.server.api.policy import source_of
from lre.server.domain.errors import InvalidArgument, TooManyCalls
from lre.server.domain.letters import EvidenceEvent, OutboxKind, OutboxState
from lre.server.domain.records import Bounce, MessageRecord, WebhookRecord
from lre.server.services.custody import CustodyQueries, DecisionService
from lre.server.services.events import EventLog
from lre.server.services.identity import IdentityService
from lre.server.services.notification import NotificationService, read_bounce_report
from lre.server.services.webhooks import WebhookService
from lre.v1 import notification_pb2, notification_pb2_grpc

KINDS = {
    OutboxKind.LETTER_WAITING: notification_pb2.NOTIFICATION_KIND_LETTER_WAITING,
    OutboxKind.REMINDER: notification_pb2.NOTIFICATION_KIND_REMINDER,
}
PROOF_KINDS = {
    EvidenceEvent.SUBMISSION_ACCEPTANCE.value: notification_pb2.NOTIFICATION_KIND_PROOF_OF_DEPOSIT,
    EvidenceEvent.CONSIGNMENT_ACCEPTANCE.value: (
        notification_pb2.NOTIFICATION_KIND_PROOF_OF_ACCEPTANCE
    ),
    EvidenceEvent.CONSIGNMENT_REJECTION.value: notification_pb2.NOTIFICATION_KIND_PROOF_OF_REFUSAL,
    EvidenceEvent.ACCEPTANCE_REJECTION_EXPIRY.value: (
        notification_pb2.NOTIFICATION_KIND_PROOF_OF_NON_CLAIM
    ),
    EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE_FAILURE.value: (
        notification_pb2.NOTIFICATION_KIND_DELIVERY_FAILURE
    ),
}
MAX_DSN_BYTES = 256 * 1024
UNSPECIFIED = notification_pb2.NOTIFICATION_KIND_UNSPECIFIED


def _delivery_state(message: MessageRecord) -> notification_pb2.DeliveryState:
    if message.state is OutboxState.PENDING:
        if message.attempts:
            return notification_pb2.DELIVERY_STATE_RETRYING
        return notification_pb2.DELIVERY_STATE_PENDING
    return {
        OutboxState.SENT: notification_pb2.DELIVERY_STATE_SENT,
        OutboxState.FAILED: notification_pb2.DELIVERY_STATE_FAILED,
        OutboxState.BOUNCED: notification_pb2.DELIVERY_STATE_BOUNCED,
        OutboxState.SENDING: notification_pb2.DELIVERY_STATE_SENDING,
    }[message.state]


def _notification(m: MessageRecord, message_id: str) -> notification_pb2.Notification:
    return notification_pb2.Notification(
        name=f"letters/{m.letter_id}/notifications/{m.id}",
        kind=PROOF_KINDS.get(m.payload.get("event", ""), UNSPECIFIED)
        if m.kind is OutboxKind.PROOF
        else KINDS.get(m.kind, UNSPECIFIED),
        delivery_state=_delivery_state(m),
        message_id=message_id,
        attempts=m.attempts,
        create_time=timestamp(m.create_time),
        sent_time=timestamp(m.sent_time),
        last_error=m.last_error or "",
        resends=m.resends,
    )


# A stream ends after this long (the caller resumes from its cursor), and a
# process serves this many at once: each holds one of the gRPC threads.
STREAM_SECONDS = 300.0
STREAM_POLL_SECONDS = 0.25
MAX_STREAMS = 16
# A party follows its letters with one stream, two while a reconnecting
# client's old one winds down; beyond, refused: no party holds the process's
# streams (the admission gate's budgets are per caller and per session).
PARTY_STREAMS = 2


def _cursor(text: str) -> int:
    if not text:
        return -1
    # ASCII digits only: str.isdigit() also takes "²" and "①", which int() refuses.
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) >= 1 << 63:
        raise InvalidArgument("cursor", "a cursor this stream returned, or empty")
    return int(text)


def _webhook(webhook: WebhookRecord, secret: str) -> notification_pb2.Webhook:
    return notification_pb2.Webhook(
        name=f"webhooks/{webhook.id}",
        url=webhook.url,
        secret=secret,
        create_time=timestamp(webhook.create_time),
    )


class NotificationServicer(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(
        self,
        notifications: NotificationService,
        decisions: DecisionService,
        queries: CustodyQueries,
        identities: IdentityService,
        events: EventLog,
        webhooks: WebhookService,
    ) -> None:
        self._webhooks = webhooks
        self._notifications = notifications
        self._decisions = decisions
        self._queries = queries
        self._identities = identities
        self._events = events
        self._streams = threading.BoundedSemaphore(MAX_STREAMS)
        self._party_streams: Counter[uuid.UUID] = Counter()
        self._party_lock = threading.Lock()

    def CreateWebhook(
        self, request: notification_pb2.CreateWebhookRequest, context: grpc.ServicerContext
    ) -> notification_pb2.Webhook:
        with domain_errors(context):
            session = session_of(context, self._identities)
            webhook, secret = self._webhooks.create(
                uuid.UUID(session.party_id), request.request_id, request.url
            )
            # The key is shown here only (and to a retry of this request).
            return _webhook(webhook, secret)

    def ListWebhooks(
        self, request: notification_pb2.ListWebhooksRequest, context: grpc.ServicerContext
    ) -> notification_pb2.ListWebhooksResponse:
        with domain_errors(context):
            session = session_of(context, self._identities)
            webhooks, token = self._webhooks.list(
                uuid.UUID(session.party_id), request.page_size, request.page_token
            )
            return notification_pb2.ListWebhooksResponse(
                webhooks=[_webhook(w, "") for w in webhooks], next_page_token=token
            )

    def DeleteWebhook(
        self, request: notification_pb2.DeleteWebhookRequest, context: grpc.ServicerContext
    ) -> notification_pb2.DeleteWebhookResponse:
        with domain_errors(context):
            session = session_of(context, self._identities)
            self._webhooks.delete(
                uuid.UUID(session.party_id), parse_id(request.name, "name", "webhooks")
            )
            return notification_pb2.DeleteWebhookResponse()

    def StreamLetterEvents(
        self, request: notification_pb2.StreamLetterEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[notification_pb2.LetterEvent]:
        with domain_errors(context):
            session = session_of(context, self._identities)
            cursor = _cursor(request.cursor)
            party = uuid.UUID(session.party_id)
            with self._party_lock:
                if self._party_streams[party] >= PARTY_STREAMS:
                    raise TooManyCalls("this party's event streams are open; close one", 5.0)
                if not self._streams.acquire(blocking=False):
                    raise TooManyCalls("too many event streams open; retry later", 5.0)
                self._party_streams[party] += 1
            try:
                ends = time.monotonic() + STREAM_SECONDS
                while context.is_active() and time.monotonic() < ends:
                    batch = self._events.after(party, cursor)
                    for entry, _letter in batch:
                        assert entry.seq is not None
                        cursor = entry.seq
                        yield notification_pb2.LetterEvent(
                            cursor=str(entry.seq),
                            letter=f"letters/{entry.letter_id}",
                            state=STATES[entry.state],
                            event=EVENTS[entry.event] if entry.event else None,
                            event_time=timestamp(entry.event_time),
                        )
                    if not batch:
                        with idle():  # waiting for events is not work (lre.runtime.inflight)
                            time.sleep(STREAM_POLL_SECONDS)
            finally:
                with self._party_lock:
                    self._party_streams[party] -= 1
                    if not self._party_streams[party]:
                        del self._party_streams[party]
                self._streams.release()

    def ListNotifications(
        self, request: notification_pb2.ListNotificationsRequest, context: grpc.ServicerContext
    ) -> notification_pb2.ListNotificationsResponse:
        with domain_errors(context):
            session = session_of(context, self._identities)
            messages, token = self._queries.notifications_for(
                session,
                parse_id(request.parent, "parent", "letters"),
                request.page_size,
                request.page_token,
            )
            return notification_pb2.ListNotificationsResponse(
                notifications=[
                    _notification(m, self._notifications.message_id(m.id)) for m in messages
                ],
                next_page_token=token,
            )

    def RecordBounce(
        self, request: notification_pb2.RecordBounceRequest, context: grpc.ServicerContext
    ) -> notification_pb2.Notification:
        # Operators only (the policy): the provider's mail system reports returns.
        with domain_errors(context):
            if request.delivery_status_notification:
                if len(request.delivery_status_notification) > MAX_DSN_BYTES:
                    raise InvalidArgument("delivery_status_notification", "at most 256 KiB")
                bounce = read_bounce_report(request.delivery_status_notification)
            else:
                bounce = Bounce(request.message_id, request.permanent, request.diagnostic)
            if len(bounce.diagnostic) > 1000:
                raise InvalidArgument("diagnostic", "at most 1000 characters")
            outbox_id = self._notifications.outbox_id(bounce.message_id)
            if outbox_id is None:
                raise InvalidArgument("message_id", "not a Message-ID this service issued")
            message = self._decisions.record_bounce(
                outbox_id, bounce.permanent, bounce.diagnostic, actor()
            )
            return _notification(message, bounce.message_id)

    def VerifyNotification(
        self, request: notification_pb2.VerifyNotificationRequest, context: grpc.ServicerContext
    ) -> notification_pb2.VerifyNotificationResponse:
        with domain_errors(context):
            if not request.letter_reference or len(request.letter_reference) > 64:
                raise InvalidArgument("letter_reference", "required, at most 64 characters")
            if len(request.verification_code) > 64:
                raise InvalidArgument("verification_code", "at most 64 characters")
            result = self._notifications.verify(
                request.letter_reference, request.verification_code, source_of(context)
            )
            return notification_pb2.VerifyNotificationResponse(
                genuine=result.genuine, acceptance_deadline=timestamp(result.acceptance_deadline)
            )

    def ClaimLetter(
        self, request: notification_pb2.ClaimLetterRequest, context: grpc.ServicerContext
    ) -> notification_pb2.LetterClaim:
        with domain_errors(context):
            claim = self._notifications.claim(
                request.letter_reference, request.verification_code, source_of(context)
            )
            return notification_pb2.LetterClaim(
                letter=f"letters/{claim.letter_id}",
                recipient=f"parties/{claim.recipient_id}",
                acceptance_deadline=timestamp(claim.acceptance_deadline),
                enrolled=claim.enrolled,
            )
