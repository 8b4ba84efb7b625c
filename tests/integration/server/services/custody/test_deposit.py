"""Deposits over SQLite and PostgreSQL and the real signer."""

from __future__ import annotations

import dataclasses
import threading
import uuid

import pytest

from lre.server.adapters.signer import ContentKeys
from lre.server.domain import identity
from lre.server.domain.errors import DepositRefused, RequestConflict
from lre.server.domain.evidence import Delegate
from lre.server.domain.identity import AssuranceLevel
from lre.server.domain.letters import PartyKind
from lre.server.domain.records import LetterRecord
from lre.server.services.custody import CustodyPolicy, DeclaredPart, DepositService
from lre.server.services.identity import NewParty
from lre.server.storage import db, models
from tests.support.world import World


def test_the_same_request_id_sent_four_times_at_once_gives_one_letter(world: World) -> None:
    barrier = threading.Barrier(4)
    letters: list[uuid.UUID] = []

    def deposit() -> None:
        barrier.wait()
        letters.append(world.deposit("the-same-request").id)

    threads = [threading.Thread(target=deposit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(letters) == 4 and len(set(letters)) == 1
    with db.sessions(world.engine)() as session:
        assert session.query(models.Letter).filter_by(request_id="the-same-request").count() == 1
        assert session.query(models.Charge).filter_by(letter_id=letters[0]).count() == 1
        # One notice for the recipient, one proof of deposit for the sender.
        assert session.query(models.OutboxMessage).filter_by(letter_id=letters[0]).count() == 2


JEAN = Delegate("Jean", "Dupont", "gérant")


def _send(
    world: World,
    request_id: str,
    recipient: uuid.UUID | None = None,
    parts: list[tuple[str, str, bytes]] | None = None,
    session: identity.Session | None = None,
    delegate: Delegate | None = None,
) -> LetterRecord:
    parts = parts or [("a.pdf", "application/pdf", b"%PDF!"), ("b.txt", "text/plain", b"abc")]
    letter, _ = world.deposits.deposit(
        session or world.session,
        request_id,
        recipient or world.recipient.id,
        [DeclaredPart(name, media, len(data)) for name, media, data in parts],
        iter([(i, data) for i, (_, _, data) in enumerate(parts)]),
        delegate,
    )
    return letter


def test_a_request_id_used_again_with_other_content_is_refused_naming_what_differs(
    world: World,
) -> None:
    first = _send(world, "r-1")
    assert _send(world, "r-1") == first  # an identical retry: the first result
    other = world.identity.parties.create(
        "gateway",
        "r-other",
        NewParty(PartyKind.LEGAL_PERSON, True, "autre@example.org", company_name="Autre SA"),
    )
    conflicts = {
        "envelope.recipient": {"recipient": other.id},
        "envelope.parts": {"parts": [("a.pdf", "application/pdf", b"%PDF!")]},
        # Same names and sizes, other bytes in the second part.
        "envelope.parts[1]": {
            "parts": [("a.pdf", "application/pdf", b"%PDF!"), ("b.txt", "text/plain", b"abd")]
        },
        # The proof of deposit names no delegate: a retry naming one is another request.
        "envelope.sender_delegate": {"delegate": JEAN},
    }
    for field, changes in conflicts.items():
        with pytest.raises(RequestConflict) as refused:
            _send(world, "r-1", **changes)  # type: ignore[arg-type]
        assert refused.value.field == field
    with db.sessions(world.engine)() as session:
        assert session.query(models.Letter).filter_by(request_id="r-1").count() == 1
        assert session.query(models.Charge).count() == 1
    # The same key from another sender is another request altogether.
    assert _send(world, "r-1", session=dataclasses.replace(world.session, party_id=str(other.id)))


def test_a_retry_names_the_same_delegate_as_the_first_deposit(world: World) -> None:
    first = _send(world, "r-3", delegate=JEAN)
    assert _send(world, "r-3", delegate=JEAN) == first
    for other in (None, Delegate("Jeanne", "Dupont", "gérante")):
        with pytest.raises(RequestConflict) as refused:
            _send(world, "r-3", delegate=other)
        assert refused.value.field == "envelope.sender_delegate"


def test_a_refused_deposit_retried_gets_the_same_refusal_unless_the_recipient_differs(
    world: World,
) -> None:
    weak = dataclasses.replace(world.session, level=AssuranceLevel.LOW)
    with pytest.raises(DepositRefused) as first:
        _send(world, "r-2", session=weak)
    with pytest.raises(DepositRefused) as again:
        _send(world, "r-2", session=weak)
    assert (again.value.reason, again.value.letter) == (first.value.reason, first.value.letter)
    other = world.identity.parties.create(
        "gateway",
        "r-other",
        NewParty(PartyKind.LEGAL_PERSON, True, "x@example.org", company_name="X"),
    )
    with pytest.raises(RequestConflict) as conflict:
        _send(world, "r-2", recipient=other.id, session=weak)
    assert conflict.value.field == "envelope.recipient"


def test_the_senders_level_is_the_providers_setting_high_by_default(world: World) -> None:
    """eIDAS 2 art. 24(1a): high unless the provider sets sender_min_level lower."""
    substantial = dataclasses.replace(world.session, level=AssuranceLevel.SUBSTANTIAL)
    with pytest.raises(DepositRefused) as refused:
        _send(world, "substantial-default", session=substantial)
    assert refused.value.code == "sender_not_identified"
    assert "below level high" in str(refused.value)
    lowered = DepositService(
        world.stores,
        ContentKeys(world.signer),
        world.evidence,
        CustodyPolicy(
            "Test provider", 10**7, 399, "EUR", sender_min_level=AssuranceLevel.SUBSTANTIAL
        ),
        world.clock,
    )
    letter, _ = lowered.deposit(
        substantial,
        "substantial-lowered",
        world.recipient.id,
        [DeclaredPart("a.pdf", "application/pdf", 5)],
        iter([(0, b"%PDF!")]),
    )
    assert letter.state.value == "deposited"
    with pytest.raises(ValueError):
        CustodyPolicy("P", 1, 1, "EUR", sender_min_level=AssuranceLevel.LOW)
