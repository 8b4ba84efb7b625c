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
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import Counter

from lre.server.adapters import at_rest
from lre.server.domain.errors import InvalidArgument, NotFound, WriteConflict
from lre.server.domain.records import LogEntryRecord, WebhookRecord
from lre.server.storage.store import Stores

logger = logging.getLogger("lre.webhooks")

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
    secrets_key: at_rest.SecretsKeys
    first_retry: dt.timedelta = dt.timedelta(seconds=10)
    max_retry: dt.timedelta = dt.timedelta(hours=1)
    give_up_after: dt.timedelta = dt.timedelta(hours=48)
    # How long an idle webhook waits before looking for new events again.
    idle: dt.timedelta = dt.timedelta(seconds=1)
    timeout_s: float = 5.0


class WebhookService:
    def __init__(
        self, stores: Stores, policy: WebhookPolicy, clock: Callable[[], dt.datetime]
    ) -> None:
        self._stores = stores
        self._policy = policy
        self._clock = clock

    # -- management ------------------------------------------------------------

    def create(self, owner_id: uuid.UUID, request_id: str, url: str) -> tuple[WebhookRecord, str]:
        """The webhook and its key (hex). A retry with the same request_id gets
        the same webhook and key; it starts with the events after its creation."""
        if not request_id or len(request_id) > 128:
            raise InvalidArgument("request_id", "required, at most 128 characters")
        _check_url(url)
        now = self._clock()
        try:
            with self._stores.begin() as store:
                webhook = store.webhooks.by_request(request_id)
                if webhook is None:
                    webhook_id = uuid.uuid4()
                    webhook = WebhookRecord(
                        id=webhook_id,
                        owner_id=owner_id,
                        url=url,
                        request_id=request_id,
                        create_time=now,
                        delete_time=None,
                        secret_ciphertext=at_rest.encrypt(
                            self._policy.secrets_key, secrets.token_bytes(32), webhook_id.bytes
                        ),
                        cursor=store.log.size() - 1,
                        attempts=0,
                        next_attempt_time=now,
                        last_error=None,
                    )
                    store.webhooks.add(webhook)
        except WriteConflict:
            with self._stores.read() as store:
                webhook = store.webhooks.by_request(request_id)
        if webhook is None or webhook.owner_id != owner_id:
            raise InvalidArgument("request_id", "already used for another webhook")
        return webhook, self._secret(webhook).hex()

    def _secret(self, webhook: WebhookRecord) -> bytes:
        return at_rest.decrypt(
            self._policy.secrets_key, webhook.secret_ciphertext, webhook.id.bytes
        )

    def list(
        self, owner_id: uuid.UUID, page_size: int, page_token: str
    ) -> tuple[list[WebhookRecord], str]:
        with self._stores.read() as store:
            return store.webhooks.page_for(owner_id, page_size, page_token)

    def delete(self, owner_id: uuid.UUID, webhook_id: uuid.UUID) -> None:
        with self._stores.begin() as store:
            webhook = store.webhooks.lock(webhook_id)
            if webhook is None or webhook.owner_id != owner_id:
                raise NotFound("no such webhook")
            if webhook.delete_time is None:
                store.webhooks.update(webhook_id, delete_time=self._clock())

    # -- delivery --------------------------------------------------------------

    def deliver_one(self) -> bool:
        """Delivers the next event of one due webhook; False when none was due."""
        now = self._clock()
        with self._stores.begin() as store:
            webhook = store.webhooks.claim_due(now)
            if webhook is None:
                return False
            pending = store.log.after(webhook.owner_id, webhook.cursor, limit=1)
            if not pending:
                store.webhooks.update(webhook.id, next_attempt_time=now + self._policy.idle)
                return True
            entry, _ = pending[0]
            store.webhooks.update(webhook.id, **self._post(webhook, entry, now))
        return True

    def _post(
        self, webhook: WebhookRecord, entry: LogEntryRecord, now: dt.datetime
    ) -> dict[str, Any]:
        """POSTs the event; what changes in the webhook's delivery state."""
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
            attempts = webhook.attempts + 1
            if now - entry.create_time >= self._policy.give_up_after:
                DELIVERIES.labels("abandoned").inc()
                logger.warning(
                    "webhook event abandoned",
                    extra={"webhook": str(webhook.id), "cursor": entry.seq},
                )
                return {**_advanced(entry.seq, now), "last_error": f"POST failed: {error}"}
            DELIVERIES.labels("failed").inc()
            delay = min(
                # The exponent is capped: two days of retries would overflow timedelta.
                self._policy.first_retry * (2 ** min(attempts - 1, 16)),
                self._policy.max_retry,
            )
            return {
                "attempts": attempts,
                "last_error": f"POST failed: {error}",
                "next_attempt_time": now + delay,
            }
        DELIVERIES.labels("delivered").inc()
        return {**_advanced(entry.seq, now), "last_error": None}


def _advanced(seq: int, now: dt.datetime) -> dict[str, Any]:
    """The delivery state once the event at ``seq`` is done with."""
    return {"cursor": seq, "attempts": 0, "next_attempt_time": now}
