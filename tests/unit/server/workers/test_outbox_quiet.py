"""The quiet period before Paris midnight (no notice composed then), and how
late a notice's evidence may be sealed: pure functions of the outbox and the
evidence time check."""

from __future__ import annotations

import datetime as dt

import pytest

from lre.server.domain.evidence import EvidenceTimeMismatch, check_times
from lre.server.domain.letters import EvidenceEvent
from lre.server.domain.window import PARIS, AcceptanceWindow
from lre.server.services.custody.evidence import _DATED_IN_THE_PAST, NOTICE_SEAL_BOUND
from lre.server.workers.outbox import quiet_until

FIVE_MINUTES = dt.timedelta(minutes=5)


def paris(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=PARIS).astimezone(dt.UTC)


@pytest.mark.parametrize(
    ("now", "quiet"),
    [
        # Winter (UTC+1), summer (UTC+2), and the two nights the offset changes.
        (paris(2027, 1, 10, 23, 55, 0), paris(2027, 1, 11)),
        (paris(2027, 7, 14, 23, 59, 59), paris(2027, 7, 15)),
        (paris(2027, 3, 27, 23, 56), paris(2027, 3, 28)),
        (paris(2027, 10, 30, 23, 58), paris(2027, 10, 31)),
    ],
)
def test_the_last_minutes_before_paris_midnight_are_quiet(
    now: dt.datetime, quiet: dt.datetime
) -> None:
    assert quiet_until(now, FIVE_MINUTES) == quiet
    # A notice sent once it is over counts its 15 days from the new day.
    assert AcceptanceWindow(quiet).notification_day == quiet.astimezone(PARIS).date()


@pytest.mark.parametrize(
    "now",
    [
        paris(2027, 1, 10, 23, 54, 59),
        paris(2027, 1, 11, 0, 0, 0),
        paris(2027, 1, 11, 0, 0, 1),
        paris(2027, 7, 14, 12, 0),
        # 23:55 UTC is not 23:55 in Paris: no quiet period at the UTC midnight.
        dt.datetime(2027, 1, 10, 23, 56, tzinfo=dt.UTC),
    ],
)
def test_the_rest_of_the_day_is_not(now: dt.datetime) -> None:
    assert quiet_until(now, FIVE_MINUTES) is None


def test_a_notice_may_be_sealed_late_up_to_its_bound_and_no_other_event() -> None:
    assert _DATED_IN_THE_PAST[EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE] == NOTICE_SEAL_BOUND
    assert EvidenceEvent.CONSIGNMENT_ACCEPTANCE not in _DATED_IN_THE_PAST
    handed_at = dt.datetime(2027, 1, 10, 12, 0, tzinfo=dt.UTC)
    second = dt.timedelta(seconds=1)
    check_times(handed_at, handed_at + dt.timedelta(hours=23), second, NOTICE_SEAL_BOUND)
    with pytest.raises(EvidenceTimeMismatch):
        check_times(handed_at, handed_at + dt.timedelta(hours=25), second, NOTICE_SEAL_BOUND)
    # Never before the hand-off, whatever the bound.
    with pytest.raises(EvidenceTimeMismatch):
        check_times(handed_at, handed_at - dt.timedelta(seconds=3), second, NOTICE_SEAL_BOUND)
