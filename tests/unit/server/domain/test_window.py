"""The 15-day acceptance window in Europe/Paris calendar days."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lre.server.domain.window import PARIS, AcceptanceWindow


def paris(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=PARIS)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("notified", "last_day", "closes_at_utc"),
    [
        # Ordinary winter day: 3 March opens 4-18 March, closes 19 March 00:00 CET.
        (paris(2026, 3, 3, 10, 0), dt.date(2026, 3, 18), utc(2026, 3, 18, 23, 0)),
        # Across the spring change (29 March 2026): closes at 00:00 CEST = 22:00 UTC.
        (paris(2026, 3, 20, 15, 0), dt.date(2026, 4, 4), utc(2026, 4, 4, 22, 0)),
        # Notified the evening before the autumn change (25 October 2026).
        (paris(2026, 10, 24, 23, 30), dt.date(2026, 11, 8), utc(2026, 11, 8, 23, 0)),
        # Notified on the weekend of the spring change itself, at 03:30 CEST.
        (paris(2026, 3, 29, 3, 30), dt.date(2026, 4, 13), utc(2026, 4, 13, 22, 0)),
        # The 31st of the month, and across a year end.
        (paris(2026, 12, 31, 12, 0), dt.date(2027, 1, 15), utc(2027, 1, 15, 23, 0)),
        (paris(2026, 1, 31, 9, 0), dt.date(2026, 2, 15), utc(2026, 2, 15, 23, 0)),
        # February: 28 days in 2027, 29 in 2028.
        (paris(2027, 2, 13, 9, 0), dt.date(2027, 2, 28), utc(2027, 2, 28, 23, 0)),
        (paris(2028, 2, 14, 9, 0), dt.date(2028, 2, 29), utc(2028, 2, 29, 23, 0)),
        (paris(2028, 2, 15, 9, 0), dt.date(2028, 3, 1), utc(2028, 3, 1, 23, 0)),
        # One minute before and after midnight Paris: the Paris day counts, not the UTC one.
        (paris(2027, 1, 31, 23, 59), dt.date(2027, 2, 15), utc(2027, 2, 15, 23, 0)),
        (utc(2027, 1, 31, 23, 30), dt.date(2027, 2, 16), utc(2027, 2, 16, 23, 0)),
    ],
)
def test_window_bounds(
    notified: dt.datetime, last_day: dt.date, closes_at_utc: dt.datetime
) -> None:
    window = AcceptanceWindow(notified)
    assert window.last_day == last_day
    assert window.closes_at == closes_at_utc
    assert window.closes_at.tzinfo == dt.UTC


def test_open_until_the_last_microsecond_of_the_15th_day() -> None:
    window = AcceptanceWindow(paris(2026, 3, 3, 10, 0))
    assert not window.is_open(paris(2026, 3, 3, 9, 59))
    assert window.is_open(paris(2026, 3, 3, 10, 0))
    assert window.is_open(paris(2026, 3, 18, 23, 59, 59, 999999))
    assert not window.is_open(paris(2026, 3, 19, 0, 0))


def test_non_claim_proof_is_due_by_the_end_of_the_next_day_even_across_dst() -> None:
    # Closes 25 October 2026 00:00 CEST; the next day has 25 hours.
    window = AcceptanceWindow(paris(2026, 10, 9, 12, 0))
    assert window.closes_at == utc(2026, 10, 24, 22, 0)
    assert window.non_claim_proof_due == utc(2026, 10, 25, 23, 0)
    assert window.non_claim_proof_due - window.closes_at == dt.timedelta(hours=25)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        AcceptanceWindow(dt.datetime(2026, 3, 3, 10, 0))


instants = st.datetimes(
    min_value=dt.datetime(2020, 1, 1),
    max_value=dt.datetime(2040, 12, 31),
    timezones=st.just(dt.UTC),
)


@given(instants)
def test_window_always_closes_at_a_paris_midnight_16_days_after_notification_day(
    notified: dt.datetime,
) -> None:
    window = AcceptanceWindow(notified)
    closes_local = window.closes_at.astimezone(PARIS)
    assert (
        closes_local.hour,
        closes_local.minute,
        closes_local.second,
        closes_local.microsecond,
    ) == (0, 0, 0, 0)
    assert closes_local.date() - notified.astimezone(PARIS).date() == dt.timedelta(days=16)
    # At least 15 full days (minus a DST hour), at most 16 days (plus one).
    assert dt.timedelta(days=15) - dt.timedelta(hours=1) < window.closes_at - notified
    assert window.closes_at - notified <= dt.timedelta(days=16, hours=1)
    assert window.is_open(notified)
    assert not window.is_open(window.closes_at)
    proof_local = window.non_claim_proof_due.astimezone(PARIS)
    assert (
        proof_local.date() - closes_local.date() == dt.timedelta(days=1) and proof_local.hour == 0
    )
