"""The sequencer: committed log entries get their index, contiguously."""

from __future__ import annotations

from lre.server.services.events import EventLog
from lre.server.workers import Doorbell


class Sequencer:
    name = "sequencer"

    def __init__(self, events: EventLog, sequenced: Doorbell | None = None) -> None:
        """``sequenced``: rung when entries got their index (the webhooks'
        lanes deliver them)."""
        self._events = events
        self._sequenced = sequenced

    def step(self) -> bool:
        if self._events.sequence() == 0:
            return False
        if self._sequenced is not None:
            self._sequenced.ring()
        return True
