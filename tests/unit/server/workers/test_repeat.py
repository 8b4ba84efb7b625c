"""How workers are repeated: a doorbell wakes a worker before its interval,
and a lane that finds work wakes a sibling."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from lre.server.workers import Doorbell, repeat


class Steps:
    """A worker whose steps find ``work`` pieces, one a step; records when each step ran."""

    def __init__(self) -> None:
        self.work = 0
        self.times: list[float] = []
        self.lock = threading.Lock()

    def step(self) -> bool:
        with self.lock:
            self.times.append(time.monotonic())
            if self.work:
                self.work -= 1
                return True
            return False


def _run(
    steps: Steps, stop: threading.Event, bell: Doorbell | None, interval_s: float
) -> threading.Thread:
    thread = threading.Thread(
        target=repeat, args=(stop, interval_s, steps.step, "test", lambda: True, bell), daemon=True
    )
    thread.start()
    return thread


def test_a_ring_wakes_the_worker_before_its_interval() -> None:
    stop, bell, steps = threading.Event(), Doorbell(), Steps()
    thread = _run(steps, stop, bell, interval_s=30.0)
    try:
        time.sleep(0.2)
        assert len(steps.times) == 1  # looked once, now waits its interval
        with steps.lock:
            steps.work = 2
        rung = time.monotonic()
        bell.ring()
        deadline = time.monotonic() + 5
        while len(steps.times) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        # Woken: two steps with work, one without; well before the interval.
        assert len(steps.times) >= 4
        assert steps.times[1] - rung < 5
        assert steps.work == 0
    finally:
        stop.set()
        bell.open()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_a_lane_that_finds_work_wakes_a_sibling() -> None:
    stop, bell, pool = threading.Event(), Doorbell(), Steps()
    looked: dict[str, int] = {"a": 0, "b": 0}

    def lane(name: str) -> Callable[[], bool]:
        def step() -> bool:
            looked[name] += 1
            return pool.step()

        return step

    threads = [
        threading.Thread(
            target=repeat, args=(stop, 30.0, lane(name), name, lambda: True, bell), daemon=True
        )
        for name in looked
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.2)
        assert looked == {"a": 1, "b": 1}
        with pool.lock:
            pool.work = 1
        # Wakes one lane, whichever: it finds the piece and wakes the other,
        # which looks too (and finds nothing), well before the interval.
        bell.ring()
        deadline = time.monotonic() + 5
        while min(looked.values()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool.work == 0
        assert min(looked.values()) >= 2, looked
    finally:
        stop.set()
        bell.open()
        for thread in threads:
            thread.join(timeout=5)


def test_without_a_doorbell_the_worker_waits_its_interval_and_stops_at_once() -> None:
    stop, steps = threading.Event(), Steps()
    thread = _run(steps, stop, None, interval_s=0.05)
    time.sleep(0.5)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert 3 <= len(steps.times) <= 12
