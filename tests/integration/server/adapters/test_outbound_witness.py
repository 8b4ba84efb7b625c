"""The HTTP witness against hostile peers on 127.0.0.1: an answer that is not
HTTP, a redirect, an answer that never ends, a status line that trickles.
Each is a counted failure, retried; the witness thread outlives them all and
publishes once the peer behaves; the oldest pending head is exposed for the
alert; nothing waits past its deadline or reads past a few KiB."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from prometheus_client import REGISTRY

from lre.server.adapters import outbound
from lre.server.adapters.witness import HttpWitness, WitnessPublisher
from tests.support.peers import Peer, endless, not_http, status, trickle
from tests.support.processes import wait_for

LINE = b'{"number": 1}\n'


def _value(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"witness": "http"}) or 0.0


def test_a_peer_that_is_not_http_fails_attempts_but_never_kills_the_thread() -> None:
    taken = threading.Event()
    behaving = threading.Event()

    def answer(conn: socket.socket, request: bytes) -> None:
        if behaving.is_set():
            status(204)(conn, request)
            taken.set()
        else:
            not_http(conn, request)

    failures = _value("lre_tree_head_witness_failures_total")
    published = _value("lre_tree_head_witness_published_total")
    with Peer(answer) as peer:
        publisher = WitnessPublisher([HttpWitness(peer.url(), timeout_s=2)], first_retry_s=0.05)
        try:
            before = time.time()
            publisher.publish(LINE)
            assert wait_for(lambda: _value("lre_tree_head_witness_failures_total") >= failures + 3)
            assert _value("lre_tree_head_witness_pending") == 1
            oldest = _value("lre_tree_head_witness_oldest_pending_timestamp_seconds")
            assert before - 1 <= oldest <= time.time()
            behaving.set()
            assert taken.wait(10)
            assert wait_for(lambda: _value("lre_tree_head_witness_pending") == 0)
        finally:
            publisher.close()
    assert _value("lre_tree_head_witness_published_total") == published + 1
    assert _value("lre_tree_head_witness_oldest_pending_timestamp_seconds") == 0
    assert peer.requests[-1].endswith(LINE)


def test_a_redirect_is_a_failure_and_is_not_followed() -> None:
    with Peer(status(204)) as target:
        moved = status(302, f"Location: {target.url('/elsewhere')}\r\n")
        with Peer(moved) as peer:
            witness = HttpWitness(peer.url(), timeout_s=2)
            with pytest.raises(outbound.OutboundError) as raised:
                witness.send(LINE)
            assert "302" in raised.value.reason
            time.sleep(0.2)
    assert target.requests == []


def test_an_endless_answer_is_read_a_few_kib_and_a_trickle_is_cut_at_the_deadline() -> None:
    with Peer(endless) as peer:
        started = time.monotonic()
        HttpWitness(peer.url(), timeout_s=5).send(LINE)  # 200: taken, the rest unread
        assert time.monotonic() - started < 2
    with Peer(trickle(every_s=0.3)) as peer:
        started = time.monotonic()
        with pytest.raises(outbound.OutboundError):
            HttpWitness(peer.url(), timeout_s=1).send(LINE)
        took = time.monotonic() - started
        assert 0.9 < took < 2.5, took
