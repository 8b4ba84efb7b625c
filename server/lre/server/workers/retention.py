"""The retention purge: the content of final letters is deleted once its
retention has passed, unless on legal hold; the evidence stays. A mailing's
content, shared by its letters, goes once none of them still needs it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from prometheus_client import Counter

from lre.server.storage.store import Stores

PURGED = Counter(
    "lre_letter_contents_purged", "Letter contents deleted at the end of their retention."
)


class RetentionPurge:
    name = "retention"

    def __init__(
        self,
        stores: Stores,
        retention: dt.timedelta,
        clock: Callable[[], dt.datetime],
        batch: int = 100,
    ) -> None:
        self._stores = stores
        self._retention = retention
        self._clock = clock
        self._batch = batch

    def purge_content(self, batch: int | None = None) -> int:
        """Deletes the content (chunks and wrapped key) of up to ``batch`` letters; how many."""
        now = self._clock()
        with self._stores.begin() as store:
            due = store.letters.lock_past_retention(now - self._retention, batch or self._batch)
            store.letters.purge_content(due, now)
            store.mailings.purge_unneeded_content(now)
        PURGED.inc(len(due))
        return len(due)

    def step(self) -> bool:
        return self.purge_content() > 0
