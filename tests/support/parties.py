"""Factories for parties through the identity services: created, proofed
(a document check), enrolled (a password and a TOTP device)."""

from __future__ import annotations

import datetime as dt
import urllib.parse
import uuid

import pyotp

from lre.server.domain.letters import PartyKind
from lre.server.services.identity import IdentityService, NewParty

PASSWORD = "correct horse battery staple"


def person(
    service: IdentityService,
    request_id: str | None = None,
    professional: bool = False,
    given_name: str = "Camille",
    family_name: str = "Dupont",
) -> uuid.UUID:
    party = service.parties.create(
        request_id or str(uuid.uuid4()),
        NewParty(
            PartyKind.NATURAL_PERSON, professional, "camille@example.org", given_name, family_name
        ),
    )
    return party.id


def proofed(service: IdentityService, now: dt.datetime) -> uuid.UUID:
    party = person(service)
    service.proofing.record_document_check(
        party, "passport", "19AB12345", now + dt.timedelta(days=900), "op-7"
    )
    return party


def totp_of(provisioning_uri: str) -> pyotp.TOTP:
    query = urllib.parse.parse_qs(urllib.parse.urlparse(provisioning_uri).query)
    return pyotp.TOTP(query["secret"][0])


def enrolled(service: IdentityService, now: dt.datetime) -> tuple[uuid.UUID, pyotp.TOTP]:
    party = proofed(service, now)
    service.credentials.set_password(party, PASSWORD)
    return party, totp_of(service.credentials.enroll_totp(party))
