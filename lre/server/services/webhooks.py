"""Webhooks: a provider system's URL that receives the events of a sender's
letters, in log order, each signed with HMAC-SHA256 under a key shown once.

Delivery: one event per POST, the next only after the previous succeeded, so
the receiver sees the log's order. A failed POST is retried with exponential
backoff; an event still undelivered 48 hours after it happened is given up
(counted, logged) and delivery moves on to the next."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.domain.errors import InvalidArgument, NotFound
from lre.server.services import at_rest
from lre.server.services.events import EventLog
from lre.server.storage import models
from lre.server.storage.paging import paged

log = logging.getLogger("lre.webhooks")

DELIVERIES = Counter("lre_webhook_deliveries", "Webhook POSTs, by outcome.", ["outcome"])
for _outcome in ("delivered", "failed", "abandoned"):
    DELIVERIES.labels(_outcome)
SIGNATURE_HEADER = "X-LRE-Signature"
TIMESTAMP_HEADER = "X-LRE-Timestamp"


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """What the receiver recomputes: HMAC-SHA256 over "<timestamp>.<body>"."""
    return (
        "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    )


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    loopback = False
    if parts.hostname:
        try:
            loopback = ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = parts.hostname == "localhost"
    if (
        len(url) > 2048
        or not parts.hostname
        or not (parts.scheme == "https" or (parts.scheme == "http" and loopback))
    ):
        raise InvalidArgument("url", "an https URL (http only on the loopback), at most 2048")


@dataclass(frozen=True)
class WebhookPolicy:
    secrets_key: bytes
    first_retry: dt.timedelta = dt.timedelta(seconds=10)
    max_retry: dt.timedelta = dt.timedelta(hours=1)
    give_up_after: dt.timedelta = dt.timedelta(hours=48)
    # How long an idle webhook waits before looking for new events again.
    idle: dt.timedelta = dt.timedelta(seconds=1)
    timeout_s: float = 5.0


class WebhookService:
    def __init__(
        self,
        sessions: sessionmaker[DbSession],
        events: EventLog,
        policy: WebhookPolicy,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._sessions = sessions
        self._events = events
        self._policy = policy
        self._clock = clock

    # -- management ------------------------------------------------------------

    def create(self, owner_id: uuid.UUID, request_id: str, url: str) -> tuple[models.Webhook, str]:
        """The webhook and its key (hex). A retry with the same request_id gets
        the same webhook and key; it starts with the events after its creation."""
        if not request_id or len(request_id) > 128:
            raise InvalidArgument("request_id", "required, at most 128 characters")
        _check_url(url)
        now = self._clock()
        query = select(models.Webhook).where(models.Webhook.request_id == request_id)
        try:
            with self._sessions.begin() as db:
                webhook = db.scalar(query)
                if webhook is None:
                    webhook_id = uuid.uuid4()
                    webhook = models.Webhook(
                        id=webhook_id,
                        owner_id=owner_id,
                        url=url,
                        secret_ciphertext=at_rest.encrypt(
                            self._policy.secrets_key, secrets.token_bytes(32), webhook_id.bytes
                        ),
                        request_id=request_id,
                        create_time=now,
                        cursor=self._events.size(db) - 1,
                        attempts=0,
                        next_attempt_time=now,
                    )
                    db.add(webhook)
        except IntegrityError:
            with self._sessions() as db:
                webhook = db.scalar(query)
        if webhook is None or webhook.owner_id != owner_id:
            raise InvalidArgument("request_id", "already used for another webhook")
        return webhook, self._secret(webhook).hex()

    def _secret(self, webhook: models.Webhook) -> bytes:
        return at_rest.decrypt(
            self._policy.secrets_key, webhook.secret_ciphertext, webhook.id.bytes
        )

    def list(
        self, owner_id: uuid.UUID, page_size: int, page_token: str
    ) -> tuple[list[models.Webhook], str]:
        query = (
            select(models.Webhook)
            .where(models.Webhook.owner_id == owner_id, models.Webhook.delete_time.is_(None))
            .order_by(models.Webhook.create_time, models.Webhook.id)
        )
        with self._sessions() as db:
            return paged(db, query, page_size, page_token)

    def delete(self, owner_id: uuid.UUID, webhook_id: uuid.UUID) -> None:
        with self._sessions.begin() as db:
            webhook = db.get(models.Webhook, webhook_id, with_for_update=True)
            if webhook is None or webhook.owner_id != owner_id:
                raise NotFound("no such webhook")
            if webhook.delete_time is None:
                webhook.delete_time = self._clock()

    # -- delivery --------------------------------------------------------------

    def deliver_one(self) -> bool:
        """Delivers the next event of one due webhook; False when none was due."""
        now = self._clock()
        with self._sessions.begin() as db:
            webhook = db.scalar(
                select(models.Webhook)
                .where(
                    models.Webhook.delete_time.is_(None),
                    models.Webhook.next_attempt_time <= now,
                )
                .order_by(models.Webhook.next_attempt_time)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if webhook is None:
                return False
            pending = self._events.after(webhook.owner_id, webhook.cursor, limit=1, db=db)
            if not pending:
                webhook.next_attempt_time = now + self._policy.idle
                return True
            entry, _ = pending[0]
            self._post(db, webhook, entry, now)
        return True

    def _post(
        self, db: DbSession, webhook: models.Webhook, entry: models.LogEntry, now: dt.datetime
    ) -> None:
        assert entry.seq is not None
        body = json.dumps(
            {
                "cursor": str(entry.seq),
                "letter": f"letters/{entry.letter_id}",
                "state": entry.state.value,
                "event": entry.event.value if entry.event else None,
                "eventTime": entry.event_time.isoformat().replace("+00:00", "Z"),
            },
            sort_keys=True,
        ).encode()
        stamp = str(int(now.timestamp()))
        # The scheme was checked at creation: https, or http on the loopback.
        request = urllib.request.Request(  # noqa: S310
            webhook.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: stamp,
                SIGNATURE_HEADER: signature(self._secret(webhook), stamp, body),
                "X-LRE-Delivery": str(entry.id),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self._policy.timeout_s) as reply:  # noqa: S310
                reply.read(1024)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            error = str(getattr(exc, "code", "") or type(exc).__name__)
            webhook.attempts += 1
            webhook.last_error = f"POST failed: {error}"
            if now - entry.create_time >= self._policy.give_up_after:
                DELIVERIES.labels("abandoned").inc()
                log.warning(
                    "webhook event abandoned",
                    extra={"webhook": str(webhook.id), "cursor": entry.seq},
                )
                self._advance(webhook, entry.seq, now)
                return
            DELIVERIES.labels("failed").inc()
            delay = min(
                # The exponent is capped: two days of retries would overflow timedelta.
                self._policy.first_retry * (2 ** min(webhook.attempts - 1, 16)),
                self._policy.max_retry,
            )
            webhook.next_attempt_time = now + delay
            return
        DELIVERIES.labels("delivered").inc()
        webhook.last_error = None
        self._advance(webhook, entry.seq, now)

    @staticmethod
    def _advance(webhook: models.Webhook, seq: int, now: dt.datetime) -> None:
        webhook.cursor = seq
        webhook.attempts = 0
        webhook.next_attempt_time = now
