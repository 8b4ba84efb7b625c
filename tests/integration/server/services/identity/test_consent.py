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
    AlreadyExists,
    InvalidArgument,
    NotFound,
)
from lre.server.domain.identity import ProfessionalBasis
from lre.server.domain.letters import PartyKind
from lre.server.domain.log import email_hmac
from lre.server.services.identity import IdentityService, NewParty, ProfessionalDecision
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
    # Not with a signed form it does not record: that form would be lost.
    with pytest.raises(AlreadyExists) as conflict:
        service.consents.grant("portal", "c-2b", recipient, sender, "signed-form", "ab" * 32)
    assert conflict.value.field == "consent_form_sha256"
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
    # The gateway's word is a claim: nothing in force, nothing journaled.
    assert company.professional_claimed and not company.professional
    assert len(_party_leaves(database)) == 2
    decision = ProfessionalDecision(True, ProfessionalBasis.OPERATOR, "Kbis 2026-11-02", "desk-7")
    decided = service.parties.set_professional(company.id, decision)
    assert decided.professional and decided.professional_basis is ProfessionalBasis.OPERATOR
    service.parties.set_professional(company.id, decision)  # the same again: logged once
    assert service.parties.get(company.id).professional
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
        "basis": "operator",
        "evidence": "Kbis 2026-11-02",
        "operatorId": "desk-7",
    }
    ended = service.parties.set_professional(
        company.id, ProfessionalDecision(False, ProfessionalBasis.OPERATOR, "SCI familiale", "d")
    )
    assert not ended.professional and ended.professional_basis is None
    assert _party_leaves(database)[-1]["kind"] == "professional_ended"
    text = json.dumps(_party_leaves(database))
    # No address, no name: only keyed hashes.
    assert "example" not in text and "Camille" not in text and "Société" not in text


def test_an_operator_names_what_it_decided_on(service: IdentityService) -> None:
    company = service.parties.create(
        "gateway", "pro-2", NewParty(PartyKind.LEGAL_PERSON, False, "a@b.example", company_name="X")
    )
    for decision, field in (
        (ProfessionalDecision(True, ProfessionalBasis.OPERATOR, "", "desk"), "basis"),
        (ProfessionalDecision(True, ProfessionalBasis.OPERATOR, "Kbis", ""), "operator_id"),
    ):
        with pytest.raises(InvalidArgument) as refused:
            service.parties.set_professional(company.id, decision)
        assert refused.value.field == field
    with pytest.raises(NotFound):
        service.parties.set_professional(
            uuid.uuid4(), ProfessionalDecision(True, ProfessionalBasis.PARTY)
        )
    assert not service.parties.get(company.id).professional


def test_a_registration_identifier_is_checked_and_kept_in_the_certificate_form(
    service: IdentityService,
) -> None:
    company = service.parties.create(
        "gateway",
        "reg-1",
        NewParty(
            PartyKind.LEGAL_PERSON,
            False,
            "a@b.example",
            company_name="La Poste",
            registration_id="356 000 000 49837",
        ),
    )
    assert service.parties.get(company.id).registration_id == "NTRFR-35600000049837"
    with pytest.raises(InvalidArgument) as refused:
        service.parties.create(
            "gateway",
            "reg-2",
            NewParty(
                PartyKind.LEGAL_PERSON,
                False,
                "a@b.example",
                company_name="X",
                registration_id="552100555",
            ),
        )
    assert refused.value.field == "party.registration_id"
