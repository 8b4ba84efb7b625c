"""When the workers leave the signer alone, and when they stop."""

from __future__ import annotations

import datetime as dt

from lre.server.workers.signer_watch import SIGNER_PAUSE, SignerOutage

T0 = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
SECOND = dt.timedelta(seconds=1)


def test_found_down_it_is_left_alone_for_the_pause_then_tried_again() -> None:
    outage = SignerOutage()
    assert not outage.down(T0)
    outage.met_down(T0)
    assert outage.down(T0)
    assert outage.down(T0 + SIGNER_PAUSE - SECOND)
    assert not outage.down(T0 + SIGNER_PAUSE)


def test_found_down_again_the_pause_runs_from_the_latest() -> None:
    outage = SignerOutage()
    outage.met_down(T0 + 5 * SECOND)
    outage.met_down(T0)  # a slower worker's older failure does not shorten it
    assert outage.down(T0 + SIGNER_PAUSE + 4 * SECOND)
    assert not outage.down(T0 + SIGNER_PAUSE + 5 * SECOND)


def test_a_health_check_asked_after_it_was_found_down_ends_the_pause() -> None:
    outage = SignerOutage()
    outage.met_down(T0)
    outage.seen_serving(T0 + SECOND)
    assert not outage.down(T0 + 2 * SECOND)


def test_a_health_check_asked_before_it_was_found_down_does_not() -> None:
    """The answer was on its way when a worker's call failed: it says nothing
    of the signer since."""
    outage = SignerOutage()
    outage.met_down(T0)
    outage.seen_serving(T0)
    outage.seen_serving(T0 - SECOND)
    assert outage.down(T0 + SECOND)


def test_serving_when_never_found_down_changes_nothing() -> None:
    outage = SignerOutage()
    outage.seen_serving(T0)
    assert not outage.down(T0)
    outage.met_down(T0 + SECOND)
    assert outage.down(T0 + 2 * SECOND)


def test_a_clock_stepped_back_by_more_than_the_pause_ends_it() -> None:
    outage = SignerOutage()
    outage.met_down(T0)
    assert outage.down(T0 - SIGNER_PAUSE)
    assert not outage.down(T0 - SIGNER_PAUSE - SECOND)
