"""The deadline sweep: proofs of non-claim when windows close, on time or late,
against decisions and other sweepers; SQLite and PostgreSQL, the real signer."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from lre.server.domain.errors import InvalidTransition
from lre.server.domain.letters import EvidenceEvent, LetterState
from lre.server.domain.window import AcceptanceWindow
from lre.server.storage import db, models
from tests.support.metrics import metric
from tests.support.world import World


def test_non_claim_is_proven_when_the_window_closes_and_not_before(
    world: World, smtp_port: int
) -> None:
    (letter,) = world.notified(1, smtp_port)
    closes_at = world.letter(letter.id).acceptance_deadline
    assert closes_at is not None
    world.clock.now = closes_at - dt.timedelta(microseconds=1)
    assert world.expiry.expire_due() == 0
    delays_before = metric("lre_non_claim_proof_delay_seconds_count")
    within_3h_before = metric("lre_non_claim_proof_delay_seconds_bucket", le="14400.0")
    late_before = metric("lre_non_claim_proofs_late_total")
    world.clock.now = closes_at + dt.timedelta(hours=3)
    assert world.expiry.expire_due() == 1
    assert world.expiry.expire_due() == 0
    assert metric("lre_non_claim_proof_delay_seconds_count") == delays_before + 1
    assert metric("lre_non_claim_proof_delay_seconds_bucket", le="14400.0") == (
        within_3h_before + 1
    )
    assert metric("lre_non_claim_proofs_late_total") == late_before  # on time
    assert metric("lre_non_claim_oldest_pending_seconds") == 0
    expired = world.letter(letter.id)
    assert expired.state is LetterState.EXPIRED and expired.decision_time == closes_at
    with db.sessions(world.engine)() as session:
        proof = (
            session.query(models.Evidence)
            .filter_by(letter_id=letter.id, event=EvidenceEvent.ACCEPTANCE_REJECTION_EXPIRY)
            .one()
        )
    assert proof.event_time == closes_at  # dated at the end of the window, not at the sweep
    with pytest.raises(InvalidTransition):
        world.decisions.accept(world.recipient_session(), letter.id)


def test_a_proof_sealed_after_the_day_following_the_window_counts_as_late(
    world: World, smtp_port: int
) -> None:
    first, _ = world.notified(2, smtp_port)
    closes_at = world.letter(first.id).acceptance_deadline
    assert closes_at is not None
    window = AcceptanceWindow(world.letter(first.id).notification_time)  # type: ignore[arg-type]
    late_before = metric("lre_non_claim_proofs_late_total")
    # The sweeper was down: it comes back after the legal limit, one letter at a time.
    world.clock.now = window.non_claim_proof_due + dt.timedelta(minutes=5)
    assert world.expiry.expire_due(batch=1) == 1
    assert metric("lre_non_claim_proofs_late_total") == late_before + 1
    # The other letter has waited since the window closed, and the gauge says so.
    waited = (world.clock.now - closes_at).total_seconds()
    assert metric("lre_non_claim_oldest_pending_seconds") == waited
    assert world.expiry.expire_due() == 1
    assert metric("lre_non_claim_oldest_pending_seconds") == 0


def test_a_decision_just_before_the_deadline_beats_the_sweeper(
    world: World, smtp_port: int
) -> None:
    (letter,) = world.notified(1, smtp_port)
    closes_at = world.letter(letter.id).acceptance_deadline
    assert closes_at is not None
    world.clock.now = closes_at - dt.timedelta(seconds=1)
    world.decisions.accept(world.recipient_session(), letter.id)
    world.clock.now = closes_at + dt.timedelta(days=1)
    assert world.expiry.expire_due() == 0
    assert world.letter(letter.id).state is LetterState.ACCEPTED


def test_concurrent_sweepers_give_each_letter_one_outcome(world: World, smtp_port: int) -> None:
    letters = world.notified(30, smtp_port)
    world.clock.advance(days=17)
    swept: list[int] = []

    def sweep() -> None:
        while (count := world.expiry.expire_due(batch=4)) > 0:
            swept.append(count)

    threads = [threading.Thread(target=sweep) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(swept) == 30
    for letter in letters:
        assert world.events(letter.id).count(EvidenceEvent.ACCEPTANCE_REJECTION_EXPIRY) == 1
        assert world.letter(letter.id).state is LetterState.EXPIRED
