"""Consent (L100) over real databases."""

from __future__ import annotations

import uuid

import pytest

from lre.server.domain import identity
from lre.server.domain.errors import (
    InvalidArgument,
    NotFound,
)
from lre.server.services.identity import IdentityService
from tests.support.parties import person


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
