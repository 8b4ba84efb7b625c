"""The sequencer wakes the webhooks' lanes only when it indexed entries."""

from __future__ import annotations

from typing import cast

from lre.server.services.events import EventLog
from lre.server.workers import Doorbell
from lre.server.workers.sequencer import Sequencer


class _Log:
    def __init__(self, counts: list[int]) -> None:
        self.counts = counts

    def sequence(self) -> int:
        return self.counts.pop(0)


def test_it_rings_when_entries_got_their_index_and_not_otherwise() -> None:
    bell = Doorbell()
    sequencer = Sequencer(cast(EventLog, _Log([0, 3])), bell)
    assert sequencer.step() is False
    assert bell.wait(0.01) is False
    assert sequencer.step() is True
    assert bell.wait(0.01) is True
