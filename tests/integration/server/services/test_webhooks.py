"""Webhooks against a real HTTP receiver on 127.0.0.1 (the loopback
allowlisted, as in development): the sender's events in log order, each
signed (HMAC-SHA256, checked here independently), retried with backoff, and
given up after 48 hours. Destinations are checked with a stub resolver:
no packet goes to a private range."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from lre.server.adapters import outbound
from lre.server.domain.errors import FailedPrecondition, InvalidArgument, RequestConflict
from lre.server.services.events import EventLog
from lre.server.services.webhooks import WebhookPolicy, WebhookService
from tests.support.peers import stub_resolver
from tests.support.services import KEY
from tests.support.webhooks import Receiver
from tests.support.world import World


@pytest.fixture
def hooks(world: World) -> Iterator[tuple[EventLog, WebhookService]]:
    events = EventLog(world.stores, world.clock)
    policy = WebhookPolicy(
        KEY,
        first_retry=dt.timedelta(seconds=10),
        allowed_networks=outbound.LOOPBACK,
        resolve=stub_resolver({"crm.example.org": "93.184.215.14"}),
    )
    yield events, WebhookService(world.stores, policy, world.clock)


def _drain(webhooks: WebhookService) -> None:
    for _ in range(100):
        if not webhooks.deliver_one():
            return
    raise AssertionError("deliveries did not settle")


def test_events_arrive_in_order_signed_and_retried(
    world: World, hooks: tuple[EventLog, WebhookService]
) -> None:
    events, webhooks = hooks
    sender = uuid.UUID(world.session.party_id)
    with Receiver(failures=2) as receiver:
        webhook, secret = webhooks.create(sender, "wh-1", receiver.url)
        again, same_secret = webhooks.create(sender, "wh-1", receiver.url)
        assert (again.id, same_secret) == (webhook.id, secret)  # a retried create
        letters = []
        for _ in range(3):
            letters.append(world.deposit())
            world.clock.advance(seconds=1)
        # The world's two companies were declared professionals: two entries first.
        assert events.sequence() == 2 + 3
        _drain(webhooks)
        assert [status for *_, status in receiver.received] == [500]
        world.clock.advance(seconds=10)
        _drain(webhooks)  # fails again: the next try is 20 s later
        world.clock.advance(seconds=19)
        _drain(webhooks)
        assert len(receiver.received) == 2
        world.clock.advance(seconds=1)
        _drain(webhooks)
    delivered = [(headers, body) for headers, body, status in receiver.received if status == 200]
    bodies = [json.loads(body) for _, body in delivered]
    assert [b["letter"] for b in bodies] == [f"letters/{letter.id}" for letter in letters]
    assert {b["event"] for b in bodies} == {"SubmissionAcceptance"}
    assert [int(b["cursor"]) for b in bodies] == sorted({int(b["cursor"]) for b in bodies})
    for headers, body in [(h, b) for h, b, _ in receiver.received]:
        expected = hmac.new(
            bytes.fromhex(secret),
            headers["X-LRE-Timestamp"].encode() + b"." + body,
            hashlib.sha256,
        ).hexdigest()
        assert headers["X-LRE-Signature"] == f"sha256={expected}"
    # Listing never shows the key again; a deleted webhook receives nothing more.
    listed, _ = webhooks.list(sender, 10, "")
    assert [w.id for w in listed] == [webhook.id]
    webhooks.delete(sender, webhook.id)
    assert webhooks.list(sender, 10, "")[0] == []


def test_an_event_undelivered_for_48_hours_is_given_up(
    world: World, hooks: tuple[EventLog, WebhookService]
) -> None:
    events, webhooks = hooks
    sender = uuid.UUID(world.session.party_id)
    abandoned = REGISTRY.get_sample_value("lre_webhook_deliveries_total", {"outcome": "abandoned"})
    with Receiver(failures=10**6) as receiver:
        webhooks.create(sender, "wh-down", receiver.url)
        world.deposit()
        world.deposit()
        events.sequence()
        hours = 0.0
        while hours < 49:
            _drain(webhooks)
            world.clock.advance(hours=1)
            hours += 1
        tried = [json.loads(b)["cursor"] for _, b, _ in receiver.received]
    # The first event: hourly retries (the backoff's ceiling) for 48 hours, then given
    # up; the second, as old, is tried once and given up at once.
    assert 45 <= tried.count(tried[0]) <= 55
    assert tried.count(tried[-1]) == 1 and len(set(tried)) == 2
    assert (
        REGISTRY.get_sample_value("lre_webhook_deliveries_total", {"outcome": "abandoned"})
        == (abandoned or 0) + 2
    )


def test_only_https_or_loopback_urls_are_taken(
    world: World, hooks: tuple[EventLog, WebhookService]
) -> None:
    _, webhooks = hooks
    sender = uuid.UUID(world.session.party_id)
    for url in (
        "http://example.org/hook",
        "file:///etc/passwd",
        "ftp://127.0.0.1/x",
        "",
        "https://admin:s3cret@crm.example.org/lre",  # kept and listed in clear
        "https://token@crm.example.org/lre",
    ):
        with pytest.raises(InvalidArgument):
            webhooks.create(sender, f"bad-{url}", url)
    webhook, _ = webhooks.create(sender, "good", "https://crm.example.org/lre")
    assert webhook.url == "https://crm.example.org/lre"


def test_a_request_id_is_its_owners_and_gives_the_first_webhook_or_a_clear_refusal(
    world: World, hooks: tuple[EventLog, WebhookService]
) -> None:
    _, webhooks = hooks
    sender, other = uuid.UUID(world.session.party_id), world.recipient.id
    url = "https://crm.example.org/lre"
    first, key = webhooks.create(sender, "hook-1", url)
    assert webhooks.create(sender, "hook-1", url) == (first, key)  # a retry
    # Another party's key is its own: no hint that the sender used it.
    theirs, _ = webhooks.create(other, "hook-1", url)
    assert theirs.id != first.id and theirs.owner_id == other
    with pytest.raises(RequestConflict) as reused:
        webhooks.create(sender, "hook-1", "https://crm.example.org/other")
    assert reused.value.field == "url"
    webhooks.delete(sender, first.id)
    with pytest.raises(FailedPrecondition, match="was deleted"):
        webhooks.create(sender, "hook-1", url)
