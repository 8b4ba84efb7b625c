"""The census: letters counted by state for the ``lre_letters`` gauge."""

from __future__ import annotations

from prometheus_client import Gauge

from lre.server.domain.letters import LetterState
from lre.server.storage.store import Stores

LETTERS = Gauge(
    "lre_letters", "Letters in each state, as last counted.", ["state"], multiprocess_mode="livemax"
)


class Census:
    name = "census"

    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    def count_by_state(self) -> dict[LetterState, int]:
        with self._stores.read() as store:
            counts = store.letters.count_by_state()
        for state, count in counts.items():
            LETTERS.labels(state.value).set(count)
        return counts

    def step(self) -> bool:
        self.count_by_state()
        return False  # once per interval
