"""The acceptance window (CPCE R53-3 I): 15 days counted from the day after the
notification, in Europe/Paris calendar days, ending at the end of the 15th.

A notification on 3 March (any hour, Paris time) opens days 4 to 18 March;
the window closes at 19 March 00:00 Paris time. Daylight-saving changes move
the UTC offset, never the calendar day, so every bound is computed as a local
midnight and only then converted to UTC.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
ACCEPTANCE_DAYS = 15


def paris_midnight(day: dt.date) -> dt.datetime:
    """Start of ``day`` in Paris, as UTC. Paris changes time at 02:00/03:00, so
    midnight always exists exactly once."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=PARIS).astimezone(dt.UTC)


@dataclass(frozen=True)
class AcceptanceWindow:
    notified_at: dt.datetime

    def __post_init__(self) -> None:
        if self.notified_at.tzinfo is None:
            raise ValueError("notified_at must be timezone-aware")

    @property
    def notification_day(self) -> dt.date:
        return self.notified_at.astimezone(PARIS).date()

    @property
    def last_day(self) -> dt.date:
        """The 15th calendar day after the notification day."""
        return self.notification_day + dt.timedelta(days=ACCEPTANCE_DAYS)

    @property
    def closes_at(self) -> dt.datetime:
        """The first instant at which accepting or refusing is too late (UTC)."""
        return paris_midnight(self.last_day + dt.timedelta(days=1))

    @property
    def non_claim_proof_due(self) -> dt.datetime:
        """The proof of non-claim must reach the sender no later than the day
        after the window ends: before this instant (UTC)."""
        return paris_midnight(self.last_day + dt.timedelta(days=2))

    def is_open(self, now: dt.datetime) -> bool:
        return self.notified_at <= now < self.closes_at
