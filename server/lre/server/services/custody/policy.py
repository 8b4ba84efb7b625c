"""The provider's custody settings."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from lre.server.domain.identity import SENDER_MIN_LEVEL, AssuranceLevel

# The content outlives the 15-day window and the day after it, whatever the setting.
MIN_CONTENT_RETENTION = dt.timedelta(days=30)


@dataclass(frozen=True)
class CustodyPolicy:
    provider_name: str
    max_letter_bytes: int
    tariff_minor: int
    currency: str
    # Letter content is deleted this long after deposit, once the letter is
    # final and unless it is on legal hold. Evidence is kept.
    content_retention: dt.timedelta = dt.timedelta(days=365)
    # Days after the notification on which a recipient who has not answered is reminded.
    reminder_days: tuple[int, ...] = (7, 13)
    # eIDAS 2 art. 24(1a): senders are identified at level high.
    sender_min_level: AssuranceLevel = SENDER_MIN_LEVEL

    def __post_init__(self) -> None:
        if self.content_retention < MIN_CONTENT_RETENTION:
            raise ValueError("content retention must be at least 30 days")
        if any(not 0 < day < 15 for day in self.reminder_days):
            raise ValueError("reminders fall within the 15-day window (days 1 to 14)")
        if self.sender_min_level < AssuranceLevel.SUBSTANTIAL:
            raise ValueError("senders are proofed at level substantial at least")
