"""Webhooks against hostile receivers and destinations, on SQLite and
PostgreSQL: a receiver that trickles its answer holds no transaction (another
sender deposits meanwhile) and is cut at the deadline; one that answers
something that is not HTTP, or redirects, is a recorded failure with backoff
that does not block another sender's webhook; private, loopback and
link-local destinations are refused at registration and at delivery (a name
that rebinds), checked with a stub resolver (no packet to a private range),
and the connection goes to the address checked."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable

import pytest

from lre.server.adapters import outbound
from lre.server.domain.errors import InvalidArgument
from lre.server.services.events import EventLog
from lre.server.services.webhooks import WebhookPolicy, WebhookService
from tests.support.peers import Peer, not_http, status, stub_resolver, trickle
from tests.support.processes import wait_for
from tests.support.services import KEY
from tests.support.world import World

PUBLIC = "93.184.215.14"


def _service(
    world: World, resolve: outbound.Resolver, allowed: tuple[outbound.Network, ...] = ()
) -> WebhookService:
    policy = WebhookPolicy(
        KEY,
        first_retry=dt.timedelta(seconds=10),
        timeout_s=1.0,
        allowed_networks=allowed,
        resolve=resolve,
    )
    return WebhookService(world.stores, policy, world.clock)


def _state(webhooks: WebhookService, owner: uuid.UUID) -> list[tuple[int, str | None]]:
    listed, _ = webhooks.list(owner, 10, "")
    return [(w.attempts, w.last_error) for w in listed]


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.5",
        "192.168.1.1",
        "172.16.0.1",
        "127.0.0.1",
        "169.254.169.254",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:10.0.0.1",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
    ],
)
def test_private_destinations_are_refused_at_registration(world: World, address: str) -> None:
    webhooks = _service(world, stub_resolver({"hooks.example": address}))
    sender = uuid.UUID(world.session.party_id)
    with pytest.raises(InvalidArgument) as raised:
        webhooks.create(sender, f"r-{address}", "https://hooks.example/lre")
    assert "url" in str(raised.value.field)


def test_what_registration_takes_and_refuses(world: World) -> None:
    webhooks = _service(world, stub_resolver({"hooks.example": PUBLIC, "nowhere.example": ""}))
    sender = uuid.UUID(world.session.party_id)
    for url in (
        "http://hooks.example/lre",  # public, but not over https
        "https://nowhere.example/lre",  # does not resolve
        "https://hooks.example:99999/lre",
        "ftp://hooks.example/x",
    ):
        with pytest.raises(InvalidArgument):
            webhooks.create(sender, f"bad-{url}", url)
    assert webhooks.create(sender, "good", "https://hooks.example/lre")[0].url


def test_a_name_that_rebinds_to_a_private_address_is_refused_at_delivery(world: World) -> None:
    answers = {"hooks.example": PUBLIC}
    webhooks = _service(world, stub_resolver(answers))
    sender = uuid.UUID(world.session.party_id)
    webhooks.create(sender, "rebind", "https://hooks.example/lre")
    events = EventLog(world.stores, world.clock)
    world.deposit()
    events.sequence()
    answers["hooks.example"] = "10.0.0.7"
    started = time.monotonic()
    assert webhooks.deliver_one()
    assert time.monotonic() - started < 1  # refused before any connection
    [(attempts, error)] = _state(webhooks, sender)
    assert attempts == 1 and error is not None and "private" in error
    assert not webhooks.deliver_one()  # backoff: not due again at once


def test_the_connection_goes_to_the_address_checked(world: World) -> None:
    # A name only the stub resolver knows: the POST reaches the peer through
    # the checked address, never through a second (system) resolution.
    with Peer(status(204)) as peer:
        webhooks = _service(world, stub_resolver({"receiver.test": "127.0.0.1"}), outbound.LOOPBACK)
        sender = uuid.UUID(world.session.party_id)
        webhooks.create(sender, "named", f"http://receiver.test:{peer.port}/hook")
        world.deposit()
        EventLog(world.stores, world.clock).sequence()
        while webhooks.deliver_one():
            pass
    assert len(peer.requests) >= 1
    assert f"Host: receiver.test:{peer.port}".encode() in peer.requests[0]
    assert _state(webhooks, sender)[0] == (0, None)


def _in_thread(work: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_a_trickling_receiver_holds_no_transaction_and_is_cut(world: World) -> None:
    with Peer(trickle(every_s=0.3)) as peer:
        webhooks = _service(world, stub_resolver({}), outbound.LOOPBACK)
        sender = uuid.UUID(world.session.party_id)
        webhooks.create(sender, "slow", peer.url())
        world.deposit()
        EventLog(world.stores, world.clock).sequence()
        started = time.monotonic()
        delivery = _in_thread(webhooks.deliver_one)
        assert wait_for(lambda: len(peer.requests) == 1)
        # Meanwhile the database is free: a deposit (SQLite's write lock too).
        asked = time.monotonic()
        world.deposit()
        assert time.monotonic() - asked < 1
        delivery.join(10)
        took = time.monotonic() - started
    assert not delivery.is_alive() and took < 3, took
    [(attempts, error)] = _state(webhooks, sender)
    assert attempts == 1 and error is not None


def test_a_receiver_that_is_not_http_or_redirects_blocks_no_one(world: World) -> None:
    with (
        Peer(not_http) as bad,
        Peer(status(302, "Location: /x\r\n")) as moved,
        Peer(status(204)) as good,
    ):
        webhooks = _service(world, stub_resolver({}), outbound.LOOPBACK)
        sender = uuid.UUID(world.session.party_id)
        webhooks.create(sender, "bad", bad.url())
        webhooks.create(sender, "moved", moved.url())
        webhooks.create(sender, "good", good.url())
        world.deposit()
        EventLog(world.stores, world.clock).sequence()
        for _ in range(20):  # bounded: every webhook is due once, then backs off
            if not webhooks.deliver_one():
                break
    assert len(bad.requests) == 1 and len(moved.requests) == 1
    assert len(good.requests) >= 1  # delivered although listed after the two failing
    errors = {w.url: (w.attempts, w.last_error) for w in webhooks.list(sender, 10, "")[0]}
    assert errors[good.url()] == (0, None)
    assert errors[bad.url()][0] == 1 and "BadStatusLine" in str(errors[bad.url()][1])
    assert errors[moved.url()][0] == 1 and "302" in str(errors[moved.url()][1])
