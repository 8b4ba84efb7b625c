"""The sequencer: committed log entries get their index, contiguously."""

from __future__ import annotations

from lre.server.services.events import EventLog


class Sequencer:
    name = "sequencer"

    def __init__(self, events: EventLog) -> None:
        self._events = events

    def step(self) -> bool:
        return self._events.sequence() > 0
