"""Parties over real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.domain.errors import (
    InvalidArgument,
    NotFound,
    RequestConflict,
)
from lre.server.domain.letters import PartyKind
from lre.server.services.identity import IdentityService, NewParty
from lre.server.storage import models
from tests.support.parties import person


def test_create_party_is_idempotent_and_validated(service: IdentityService) -> None:
    first = person(service, "req-1")
    assert person(service, "req-1") == first
    assert person(service, "req-2") != first
    for new, field in (
        (NewParty(PartyKind.NATURAL_PERSON, False, "not-an-address", "A", "B"), "party.email"),
        (NewParty(PartyKind.NATURAL_PERSON, False, "a@example.org", "A", ""), "party.family_name"),
        (NewParty(PartyKind.LEGAL_PERSON, True, "a@example.org"), "party.company_name"),
        # Names a proof would print as nothing, or with something hidden in them.
        (
            NewParty(PartyKind.NATURAL_PERSON, False, "a@example.org", "   ", "B"),
            "party.given_name",
        ),
        (
            NewParty(PartyKind.NATURAL_PERSON, False, "a@example.org", "A", "\u0301"),
            "party.family_name",
        ),
        (
            NewParty(PartyKind.LEGAL_PERSON, True, "a@example.org", company_name="A\u200bB SA"),
            "party.company_name",
        ),
        (
            NewParty(
                PartyKind.LEGAL_PERSON,
                True,
                "a@example.org",
                company_name="A SA",
                postal_address={"lines": ["1 rue"] * 7},
            ),
            "party.postal_address.lines",
        ),
    ):
        with pytest.raises(InvalidArgument) as raised:
            service.parties.create("gateway", str(uuid.uuid4()), new)
        assert raised.value.field == field
    with pytest.raises(NotFound):
        service.parties.get(uuid.uuid4())


def test_the_same_request_id_sent_twice_at_once_creates_one_party(
    service: IdentityService, database: sessionmaker[DbSession]
) -> None:
    barrier = threading.Barrier(4)
    results: list[uuid.UUID] = []

    def create() -> None:
        barrier.wait()
        results.append(person(service, "race-1"))

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and len(set(results)) == 1
    with database() as session:
        assert session.scalar(select(func.count()).select_from(models.Party)) == 1


def test_idempotency_keys_belong_to_their_caller(service: IdentityService) -> None:
    """Another caller's key creates another party and reveals nothing of the first;
    the same caller's key with other content is refused, naming the field."""
    camille = NewParty(PartyKind.NATURAL_PERSON, False, "camille@example.org", "Camille", "Dupont")
    mine = service.parties.create("sender-gateway.lre.test", "k-1", camille)
    assert service.parties.create("sender-gateway.lre.test", "k-1", camille).id == mine.id
    probe = NewParty(PartyKind.LEGAL_PERSON, True, "x@evil.example", company_name="Evil")
    theirs = service.parties.create("recipient-portal.lre.test", "k-1", probe)
    assert theirs.id != mine.id and theirs.email == "x@evil.example"
    with pytest.raises(RequestConflict) as reused:
        service.parties.create("sender-gateway.lre.test", "k-1", probe)
    assert reused.value.field == "request_id"
    renamed = NewParty(PartyKind.NATURAL_PERSON, False, "camille@example.org", "Camille", "Martin")
    with pytest.raises(RequestConflict):
        service.parties.create("sender-gateway.lre.test", "k-1", renamed)


def test_consent_keys_belong_to_their_caller_too(service: IdentityService) -> None:
    recipient, sender, other = person(service), person(service), person(service)
    first = service.consents.grant("parties/r", "c-1", recipient, sender, "portal")
    assert service.consents.grant("parties/r", "c-1", recipient, sender, "portal").id == first.id
    with pytest.raises(RequestConflict) as reused:
        service.consents.grant("parties/r", "c-1", recipient, other, "portal")
    assert reused.value.field == "request_id"
    elsewhere = service.consents.grant("operator", "c-1", recipient, other, "signed-form")
    assert elsewhere.id != first.id and elsewhere.sender_id == other
