"""lre.runtime.inflight: background work waits for the API's calls, never for ever."""

from __future__ import annotations

from lre.runtime.inflight import InFlight, busy_threshold, give_way


def test_a_quiet_api_costs_no_wait() -> None:
    calls = InFlight()
    calls.enter()
    slept: list[float] = []
    assert give_way("outbox", 1.0, calls, threshold=2, sleep=slept.append) == 0
    assert slept == []


def test_waits_while_busy_and_goes_on_when_the_calls_end() -> None:
    calls = InFlight()
    for _ in range(3):
        calls.enter()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 5:
            calls.leave()  # below the threshold from now on

    waited = give_way("outbox", 10.0, calls, threshold=3, sleep=sleep)
    assert len(slept) == 5
    assert abs(waited - sum(slept)) < 1e-9


def test_a_sustained_load_holds_the_work_back_at_most_max_wait() -> None:
    calls = InFlight()
    for _ in range(50):
        calls.enter()
    slept: list[float] = []
    waited = give_way("outbox", 0.5, calls, threshold=4, sleep=slept.append)
    assert 0.5 <= waited < 0.5 + max(slept)


def test_the_threshold_follows_the_cores_this_process_may_use() -> None:
    assert busy_threshold() >= 2
    assert busy_threshold() % 2 == 0
