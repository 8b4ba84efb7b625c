"""The retention purge: content of final letters deleted after its retention,
evidence kept; SQLite and PostgreSQL, the real signer."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from lre.server.domain.errors import DepositRefused, FailedPrecondition
from lre.server.domain.identity import AssuranceLevel
from lre.server.domain.letters import LetterState
from lre.server.services.custody import CustodyPolicy, DeclaredPart
from lre.server.storage import db, models
from tests.support.mail import Inbox
from tests.support.world import World


def test_content_is_deleted_after_its_retention_but_evidence_stays(
    world: World, smtp_port: int
) -> None:
    kept, held, pending = world.notified(3, smtp_port)
    for letter in (kept, held):
        world.decisions.accept(world.recipient_session(), letter.id)
    with db.sessions(world.engine).begin() as session:
        held_row = session.get(models.Letter, held.id)
        assert held_row is not None
        held_row.legal_hold = True  # SetLegalHold needs the operator role
    world.clock.advance(days=364)
    assert world.retention.purge_content() == 0
    world.clock.advance(days=2)
    assert world.retention.purge_content() == 1
    with db.sessions(world.engine)() as session:
        chunks = {
            letter.id: session.query(models.ContentChunk).filter_by(letter_id=letter.id).count()
            for letter in (kept, held, pending)
        }
        purged = session.get(models.Letter, kept.id)
        assert (
            purged is not None
            and purged.wrapped_key is None
            and purged.content_purge_time == world.clock.now
        )
    assert chunks == {kept.id: 0, held.id: 1, pending.id: 1}  # held: legal hold; pending: not final
    assert world.events(kept.id)  # the evidence stays
    fresh = dataclasses.replace(world.recipient_session(), authenticated_at=world.clock.now)
    with pytest.raises(FailedPrecondition, match="no longer kept"):
        world.decisions.download(fresh, kept.id)


def test_a_retention_shorter_than_the_legal_window_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 30 days"):
        CustodyPolicy("p", 1, 1, "EUR", content_retention=dt.timedelta(days=10))


def test_every_final_letter_with_content_is_purged_and_a_refused_deposit_has_none(
    world: World, smtp_port: int
) -> None:
    failed = world.deposit()
    world.clock.advance(seconds=2)
    with Inbox(smtp_port, refuse=True):
        world.drain()
    assert world.letter(failed.id).state is LetterState.NOTIFICATION_FAILED
    weak = dataclasses.replace(world.session, level=AssuranceLevel.LOW)
    with pytest.raises(DepositRefused):
        world.deposits.deposit(
            weak,
            "refused",
            world.recipient.id,
            [DeclaredPart("a.pdf", "application/pdf", 5)],
            iter([(0, b"%PDF!")]),
        )
    with world.stores.read() as store:
        refused = store.letters.by_request(failed.sender_id, "refused")
    assert refused is not None and refused.state is LetterState.REJECTED
    world.clock.advance(days=366)
    # NOTIFICATION_FAILED is final: its content goes at the end of retention.
    assert world.retention.purge_content() == 1
    assert world.retention.purge_content() == 0
    purged, untouched = world.letter(failed.id), world.letter(refused.id)
    assert purged.wrapped_key is None and purged.content_purge_time == world.clock.now
    # A refused deposit never had content: nothing is recorded as deleted.
    assert untouched.content_purge_time is None
    with db.sessions(world.engine)() as session:
        assert session.query(models.ContentChunk).filter_by(letter_id=failed.id).count() == 0
