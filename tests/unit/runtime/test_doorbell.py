"""The doorbell: a ring wakes one waiting worker at once, is kept while none
waits, and opening it at shutdown wakes every worker for good."""

from __future__ import annotations

import threading
import time

from lre.runtime.doorbell import Doorbell


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


def test_one_ring_wakes_one_of_several_waiting_workers() -> None:
    bell = Doorbell()
    results: list[bool] = []
    lock = threading.Lock()

    def wait() -> None:
        rung = bell.wait(1.0)
        with lock:
            results.append(rung)

    workers = [threading.Thread(target=wait) for _ in range(3)]
    for worker in workers:
        worker.start()
    time.sleep(0.1)
    bell.ring()
    for worker in workers:
        worker.join(timeout=5)
    assert sorted(results) == [False, False, True]


def test_opened_it_wakes_every_worker_now_and_later() -> None:
    bell = Doorbell()
    results: list[bool] = []
    workers = [threading.Thread(target=lambda: results.append(bell.wait(30.0))) for _ in range(3)]
    for worker in workers:
        worker.start()
    time.sleep(0.1)
    bell.open()
    for worker in workers:
        worker.join(timeout=5)
    assert results == [True, True, True]
    started = time.monotonic()
    assert bell.wait(30.0) is True
    assert time.monotonic() - started < 1
