"""Each evidence's signed PDF proof is made once, stored, and served as stored
(SQLite and PostgreSQL, the real signer for the real proof)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from lre.server.domain.errors import DependencyUnavailable
from lre.server.domain.letters import EvidenceEvent
from lre.server.domain.records import EvidenceRecord, EvidenceWithProof
from lre.server.proofs import proof_pdf
from lre.server.services.proofs import StoredProofs
from lre.server.storage import db, models
from tests.support.world import World


def _deposit_evidence(world: World) -> EvidenceWithProof:
    letter = world.deposit()
    (evidence,) = (
        e
        for e in world.queries.evidence_for(world.session, letter.id)
        if e.event is EvidenceEvent.SUBMISSION_ACCEPTANCE
    )
    return _read(world, evidence)


def _read(world: World, evidence: EvidenceRecord) -> EvidenceWithProof:
    """As the outbox and the queries read it: with its stored proof."""
    with world.stores.read() as store:
        found = store.evidence.get(evidence.id)
    assert found is not None
    return found


def _stored(world: World, evidence: EvidenceRecord) -> list[bytes]:
    with db.sessions(world.engine)() as session:
        return [
            bytes(pdf)
            for pdf in session.scalars(
                select(models.EvidenceProof.pdf).where(
                    models.EvidenceProof.evidence_id == evidence.id
                )
            )
        ]


def _counting(render: Callable[[bytes, bytes], bytes]) -> tuple[list[int], Callable[..., bytes]]:
    calls: list[int] = []

    def counted(document: bytes, seal: bytes) -> bytes:
        calls.append(1)
        return render(document, seal)

    return calls, counted


def test_a_proof_is_made_once_then_served_as_stored(world: World) -> None:
    evidence = _deposit_evidence(world)
    calls, render = _counting(lambda d, s: proof_pdf(d, s, world.signer))
    proofs = StoredProofs(world.stores, render, world.clock)
    first = proofs.pdf(evidence)
    assert first.startswith(b"%PDF-") and proofs.pdf(evidence) == first
    proofs.flush()
    assert _stored(world, evidence) == [first]
    assert _read(world, evidence).proof_pdf == first
    # Another process (another StoredProofs) serves the stored bytes, making nothing.
    other_calls, other = _counting(lambda d, s: b"%PDF- must not be made")
    assert StoredProofs(world.stores, other, world.clock).pdf(_read(world, evidence)) == first
    assert (len(calls), len(other_calls)) == (1, 0)


def test_a_caller_that_read_before_the_write_committed_gets_the_stored_bytes(
    world: World,
) -> None:
    """A resend composed while the first attempt's PDF was being written
    read the evidence without it: it is served the stored bytes, not a
    second rendering (which would be signed anew, other bytes)."""
    evidence = _deposit_evidence(world)  # read before any proof is stored
    calls, render = _counting(lambda d, s: proof_pdf(d, s, world.signer))
    proofs = StoredProofs(world.stores, render, world.clock)
    first = proofs.pdf(evidence)
    proofs.flush()
    assert _stored(world, evidence) == [first]
    assert evidence.proof_pdf is None  # the read from before the write
    assert proofs.pdf(evidence) == first
    assert len(calls) == 1


def test_made_inside_a_transaction_it_is_stored_once_that_ends(world: World) -> None:
    """The outbox composes proof e-mails inside a transaction: on SQLite that
    holds the write lock, and a write in the same thread would wait for itself."""
    evidence = _deposit_evidence(world)
    proofs = StoredProofs(world.stores, lambda d, s: b"%PDF- made in a transaction", world.clock)
    start = time.monotonic()
    with world.stores.begin() as store:
        read = store.evidence.get(evidence.id)  # as the outbox reads it
        assert read is not None and read.proof_pdf is None
        pdf = proofs.pdf(read)
        assert proofs.pdf(read) == pdf  # served from memory until stored
    proofs.flush()
    assert time.monotonic() - start < 10
    assert _stored(world, evidence) == [pdf]


def test_two_processes_making_the_same_proof_serve_the_first_stored(world: World) -> None:
    evidence = _deposit_evidence(world)
    first = StoredProofs(world.stores, lambda d, s: b"%PDF- first", world.clock)

    def second_render(document: bytes, seal: bytes) -> bytes:
        # While this one renders, the other process makes and stores its own.
        first.pdf(evidence)
        first.flush()
        return b"%PDF- second"

    second = StoredProofs(world.stores, second_render, world.clock)
    assert second.pdf(evidence) == b"%PDF- second"  # what this caller got, a valid proof too
    second.flush()
    assert _stored(world, evidence) == [b"%PDF- first"]
    assert second.pdf(_read(world, evidence)) == b"%PDF- first"  # from now on, the stored one


def test_while_the_signer_is_down_nothing_is_stored(world: World) -> None:
    evidence = _deposit_evidence(world)

    def down(document: bytes, seal: bytes) -> bytes:
        raise DependencyUnavailable("the signer is unavailable")

    proofs = StoredProofs(world.stores, down, world.clock)
    with pytest.raises(DependencyUnavailable):
        proofs.pdf(evidence)
    proofs.flush()
    with db.sessions(world.engine)() as session:
        assert session.scalar(select(func.count()).select_from(models.EvidenceProof)) == 0
