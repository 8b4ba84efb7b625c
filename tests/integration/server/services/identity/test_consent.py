"""Consent (L100) over real databases."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.domain import identity
from lre.server.domain.errors import (
    InvalidArgument,
    NotFound,
)
from lre.server.domain.letters import PartyKind
from lre.server.domain.log import email_hmac
from lre.server.services.identity import IdentityService, NewParty
from lre.server.storage import models
from tests.support.parties import person
from tests.support.services import KEY


def test_consent_is_recorded_once_withdrawn_and_listed(service: IdentityService) -> None:
    recipient, sender, other = person(service), person(service), person(service)
    assert not service.consents.has(recipient, sender)
    consent = service.consents.grant("portal", "c-1", recipient, sender, "signed-form")
    assert (
        service.consents.grant("portal", "c-1", recipient, sender, "signed-form").id == consent.id
    )
    assert (
        service.consents.grant("portal", "c-2", recipient, sender, "portal").id == consent.id
    )  # already active
    assert service.consents.has(recipient, sender) and not service.consents.has(recipient, other)
    identity.require_consent(
        identity.Recipient(str(recipient), professional=False),
        service.consents.has(recipient, sender),
    )
    with pytest.raises(NotFound):  # only under its recipient's name
        service.consents.withdraw(other, consent.id)
    assert service.consents.has(recipient, sender)
    withdrawn = service.consents.withdraw(recipient, consent.id)
    assert withdrawn.withdraw_time is not None and not service.consents.has(recipient, sender)
    again = service.consents.grant("portal", "c-3", recipient, sender, "portal")
    assert again.id != consent.id
    service.consents.grant("portal", "c-4", recipient, other, "portal")
    page, token = service.consents.list(recipient, page_size=2, page_token="")
    rest, last = service.consents.list(recipient, page_size=2, page_token=token)
    assert len(page) == 2 and len(rest) == 1 and last == ""
    with pytest.raises(InvalidArgument):
        service.consents.list(recipient, page_size=2, page_token="not-a-token")
    with pytest.raises(NotFound):
        service.consents.grant("portal", "c-5", recipient, uuid.uuid4(), "portal")
    with pytest.raises(InvalidArgument):
        service.consents.grant("portal", "c-6", recipient, recipient, "portal")


def _party_leaves(database: sessionmaker[DbSession]) -> list[dict[str, str]]:
    with database() as db:
        rows = db.scalars(
            select(models.LogEntry.leaf)
            .where(models.LogEntry.letter_id.is_(None))
            .order_by(models.LogEntry.create_time)
        )
        return [json.loads(leaf) for leaf in rows]


def test_a_consent_its_withdrawal_and_a_professional_declaration_are_logged_minimised(
    service: IdentityService, database: sessionmaker[DbSession]
) -> None:
    recipient, sender = person(service), person(service)
    consent = service.consents.grant("portal", "c-1", recipient, sender, "portal")
    service.consents.grant("portal", "c-1", recipient, sender, "portal")  # a retry: logged once
    service.consents.withdraw(recipient, consent.id)
    service.consents.withdraw(recipient, consent.id)  # already withdrawn: logged once
    company = service.parties.create(
        "gateway",
        "pro-1",
        NewParty(PartyKind.LEGAL_PERSON, True, "greffe@societe.example", company_name="Société SA"),
    )
    leaves = _party_leaves(database)
    assert [leaf["kind"] for leaf in leaves] == [
        "consent_granted",
        "consent_withdrawn",
        "professional_declared",
    ]
    subject = f"parties/{recipient}/consents/{consent.id}"
    assert leaves[0]["subject"] == subject == leaves[1]["subject"]
    assert leaves[0]["method"] == "portal"
    assert leaves[0]["recipientEmailHmac"] == email_hmac(KEY.current, "Camille@example.org ")
    assert leaves[2] == {
        "format": "lre-log/1",
        "kind": "professional_declared",
        "subject": f"parties/{company.id}",
        "eventTime": leaves[2]["eventTime"],
        "emailHmac": email_hmac(KEY.current, "greffe@societe.example"),
        "partyKind": "legal_person",
    }
    text = json.dumps(leaves)
    # No address, no name: only keyed hashes.
    assert "example" not in text and "Camille" not in text and "Société" not in text
