"""What the custody queries give a reader: a letter's evidence, a page at a time."""

from __future__ import annotations

import datetime as dt

import pytest

from lre.server.domain.errors import InvalidArgument
from lre.server.domain.letters import EvidenceEvent
from tests.support.world import World


def test_a_letters_evidence_comes_a_page_at_a_time(world: World, smtp_port: int) -> None:
    (letter,) = world.notified(1, smtp_port)
    everything, token = world.queries.evidence_page(world.session, letter.id, 0, "")
    assert [e.event for e in everything] == [
        EvidenceEvent.SUBMISSION_ACCEPTANCE,
        EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE,
    ]
    assert token == ""
    first, token = world.queries.evidence_page(world.session, letter.id, 1, "")
    assert first == everything[:1] and token
    second, token = world.queries.evidence_page(world.session, letter.id, 1, token)
    assert second == everything[1:] and token == ""
    for size, token, field in ((-1, "", "page_size"), (1, "zzz", "page_token")):
        with pytest.raises(InvalidArgument) as refused:
            world.queries.evidence_page(world.session, letter.id, size, token)
        assert refused.value.field == field


def test_charges_between_an_end_before_the_start_is_invalid_argument(world: World) -> None:
    world.deposit()
    now = world.clock.now
    charges, _ = world.queries.charges_for(world.session, now - dt.timedelta(days=1), None, 10, "")
    assert len(charges) == 1
    with pytest.raises(InvalidArgument) as refused:
        world.queries.charges_for(world.session, now, now - dt.timedelta(seconds=1), 10, "")
    assert refused.value.field == "end_time"
