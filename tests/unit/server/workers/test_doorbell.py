"""The doorbell: a ring wakes one waiting worker at once, is kept while none
waits, and opening it at shutdown wakes every worker for good."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from lre.server.workers import Doorbell


def test_a_ring_wakes_a_waiting_worker_before_its_timeout() -> None:
    bell = Doorbell()
    woke: list[tuple[bool, float]] = []

    def wait() -> None:
        started = time.monotonic()
        woke.append((bell.wait(30.0), time.monotonic() - started))

    worker = threading.Thread(target=wait)
    worker.start()
    time.sleep(0.1)
    bell.ring()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert woke[0][0] is True
    assert woke[0][1] < 5


def test_a_ring_while_no_one_waits_is_kept_for_the_next_wait_once() -> None:
    bell = Doorbell()
    bell.ring()
    bell.ring()
    assert bell.wait(5.0) is True
    started = time.monotonic()
    assert bell.wait(0.05) is False  # kept once, not once per ring
    assert time.monotonic() - started >= 0.04


def _three_waiting(bell: Doorbell, timeout_s: float, then: Callable[[], None]) -> list[bool]:
    """What three workers waiting on ``bell`` return once ``then`` ran."""
    results: list[bool] = []
    lock = threading.Lock()

    def wait() -> None:
        rung = bell.wait(timeout_s)
        with lock:
            results.append(rung)

    workers = [threading.Thread(target=wait) for _ in range(3)]
    for worker in workers:
        worker.start()
    time.sleep(0.1)
    then()
    for worker in workers:
        worker.join(timeout=5)
    return results


def test_one_ring_wakes_one_of_several_waiting_workers() -> None:
    bell = Doorbell()
    assert sorted(_three_waiting(bell, 1.0, bell.ring)) == [False, False, True]


def test_opened_it_wakes_every_worker_now_and_later() -> None:
    bell = Doorbell()
    assert _three_waiting(bell, 30.0, bell.open) == [True, True, True]
    started = time.monotonic()
    assert bell.wait(30.0) is True
    assert time.monotonic() - started < 1
