"""Webhooks: a provider system's URL that receives the events of a sender's
letters, in log order, each signed with HMAC-SHA256 under a key shown once.

Delivery: one event per POST, the next only after the previous succeeded, so
the receiver sees the log's order. Like the outbox, in three steps: the
webhook is claimed (leased) in one transaction, the POST runs outside any
transaction with a total deadline, and its outcome is recorded in a second
one; a worker that dies in between leaves the lease to expire. Every failure
(any error, a non-2xx, a redirect, a destination refused) is recorded and
retried with exponential backoff; an event still undelivered 48 hours after
it happened is given up (counted, logged) and delivery moves on to the next.
Several delivery lanes run at once, each on another webhook, so a slow
receiver holds one lane for at most its deadline.

A webhook is a request the provider makes into its own network on a
customer's behalf: its address is checked when it is registered and again
at each delivery (lre.server.adapters.outbound), and the connection goes to
the address checked."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import Counter

from lre.server.adapters import at_rest, outbound
from lre.server.domain.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RequestConflict,
    WriteConflict,
)
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


@dataclass(frozen=True)
class WebhookPolicy:
    secrets_key: at_rest.SecretsKeys
    first_retry: dt.timedelta = dt.timedelta(seconds=10)
    max_retry: dt.timedelta = dt.timedelta(hours=1)
    give_up_after: dt.timedelta = dt.timedelta(hours=48)
    # How long an idle webhook waits before looking for new events again.
    idle: dt.timedelta = dt.timedelta(seconds=1)
    # The whole POST, connection to answer: a receiver that trickles is cut.
    timeout_s: float = 5.0
    # Networks a webhook may reach besides public addresses (an operator's
    # allowlist; the loopback in development), and how names are resolved.
    allowed_networks: tuple[outbound.Network, ...] = ()
    resolve: outbound.Resolver = outbound.system_resolver

    @property
    def lease(self) -> dt.timedelta:
        """How long a claimed webhook stays claimed: past the POST's deadline."""
        return dt.timedelta(seconds=self.timeout_s + 60)


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
        the same webhook and key; it starts with the events after its creation.
        The key with another URL is REQUEST_ID_REUSED; once the webhook it
        created is deleted, FAILED_PRECONDITION (it is not registered again
        under the same name, nor silently answered as if it were)."""
        if not request_id or len(request_id) > 128:
            raise InvalidArgument("request_id", "required, at most 128 characters")
        self._destination(url, "url")
        now = self._clock()
        try:
            with self._stores.begin() as store:
                webhook = store.webhooks.by_request(owner_id, request_id)
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
                webhook = store.webhooks.by_request(owner_id, request_id)
            assert webhook is not None  # the concurrent request that won made it
        if webhook.url != url:
            raise RequestConflict("url", "this request_id was used for a webhook to another URL")
        if webhook.delete_time is not None:
            raise FailedPrecondition(
                f"request_id: the webhook it created (webhooks/{webhook.id}) was deleted;"
                " create another with a new request_id"
            )
        return webhook, self._secret(webhook).hex()

    def _destination(self, url: str, field: str) -> outbound.Destination:
        """Where ``url`` goes, checked; InvalidArgument on ``field`` if refused."""
        if len(url) > 2048:
            raise InvalidArgument(field, "at most 2048 characters")
        if "@" in urlsplit(url).netloc:
            # Stored and listed in clear otherwise; the receiver authenticates
            # deliveries by their signature (X-LRE-Signature).
            raise InvalidArgument(field, "must carry no user name or password")
        policy = self._policy
        try:
            return outbound.destination(url, policy.resolve, policy.allowed_networks)
        except outbound.DestinationRefused as exc:
            raise InvalidArgument(
                field, f"{exc.reason} (an https URL of a public address)"
            ) from None

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
        lease = now + self._policy.lease
        with self._stores.begin() as store:
            webhook = store.webhooks.claim_due(now)
            if webhook is None:
                return False
            pending = store.log.after(webhook.owner_id, webhook.cursor, limit=1)
            if not pending:
                store.webhooks.update(webhook.id, next_attempt_time=now + self._policy.idle)
                return True
            entry, _ = pending[0]
            store.webhooks.update(webhook.id, next_attempt_time=lease)
        # Outside any transaction: the receiver holds no lock, whatever it does.
        changes = self._post(webhook, entry, now)
        with self._stores.begin() as store:
            # Only if still ours: after a lease that expired, another took it.
            store.webhooks.update_claimed(webhook.id, lease, **changes)
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
        try:
            policy = self._policy
            where = outbound.destination(webhook.url, policy.resolve, policy.allowed_networks)
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "lre-server",
                TIMESTAMP_HEADER: stamp,
                SIGNATURE_HEADER: signature(self._secret(webhook), stamp, body),
                "X-LRE-Delivery": str(entry.id),
            }
            outbound.post(where, body, headers, self._policy.timeout_s)
        except Exception as exc:  # each failure is recorded and retried, whatever it is
            if isinstance(exc, outbound.OutboundError):
                error = exc.reason
            else:
                error = type(exc).__name__
                logger.warning(
                    "webhook delivery failed",
                    extra={"webhook": str(webhook.id), "error_type": error},
                )
            return self._failed(webhook, entry, now, error)
        DELIVERIES.labels("delivered").inc()
        return {**_advanced(entry.seq, now), "last_error": None}

    def _failed(
        self, webhook: WebhookRecord, entry: LogEntryRecord, now: dt.datetime, error: str
    ) -> dict[str, Any]:
        assert entry.seq is not None
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
            "last_error": f"POST failed: {error}"[:500],
            "next_attempt_time": now + delay,
        }


def _advanced(seq: int, now: dt.datetime) -> dict[str, Any]:
    """The delivery state once the event at ``seq`` is done with."""
    return {"cursor": seq, "attempts": 0, "next_attempt_time": now}
