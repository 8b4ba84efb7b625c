"""lre.runtime.inflight: background work waits for the API's calls, never for ever."""

from __future__ import annotations

from lre.runtime.inflight import InFlight, counted_as, give_way, idle


class _Time:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def test_a_quiet_api_costs_no_wait() -> None:
    calls, time = InFlight(), _Time()
    calls.enter()
    assert give_way("outbox", 1.0, calls, 2, time.sleep, time.clock) == 0
    assert time.slept == []


def test_waits_while_busy_and_goes_on_when_the_calls_end() -> None:
    calls, time = InFlight(), _Time()
    for _ in range(3):
        calls.enter()

    def sleep(seconds: float) -> None:
        time.sleep(seconds)
        if len(time.slept) == 5:
            calls.leave()  # below the threshold from now on

    waited = give_way("outbox", 10.0, calls, 3, sleep, time.clock)
    assert len(time.slept) == 5
    assert abs(waited - sum(time.slept)) < 1e-9


def test_a_sustained_load_holds_the_work_back_at_most_max_wait_of_real_time() -> None:
    calls, time = InFlight(), _Time()
    for _ in range(50):
        calls.enter()

    def slow_sleep(seconds: float) -> None:
        time.sleep(seconds * 5)  # a contended interpreter oversleeps

    waited = give_way("outbox", 0.5, calls, 4, slow_sleep, time.clock)
    assert 0.5 <= waited <= 0.5 + 5 * max(time.slept)
    assert len(time.slept) <= 6  # the deadline is time, not a count of steps


def test_idle_takes_the_current_call_out_of_its_count_and_back() -> None:
    calls = InFlight()
    with counted_as(calls):
        with idle():
            assert calls.count == 0
        assert calls.count == 1
    assert calls.count == 0
    with idle():  # outside any call: nothing to leave
        assert calls.count == 0
