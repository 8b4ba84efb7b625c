"""Factories for parties through the identity services: created, proofed
(a document check), enrolled (a password and a TOTP device)."""

from __future__ import annotations

import datetime as dt
import urllib.parse
import uuid
from collections.abc import Callable

import pyotp
from sqlalchemy import Engine, select

from lre.server.adapters import at_rest
from lre.server.adapters.at_rest import SecretsKeys
from lre.server.domain.letters import PartyKind
from lre.server.services.identity import IdentityService, NewParty
from lre.server.storage import models

PASSWORD = "correct horse battery staple"

# Makes a party proofed and enrolled (the identity tests' ``enrol`` fixture).
Enrol = Callable[[], tuple[uuid.UUID, pyotp.TOTP]]


def person(
    service: IdentityService,
    request_id: str | None = None,
    professional: bool = False,
    given_name: str = "Camille",
    family_name: str = "Dupont",
) -> uuid.UUID:
    party = service.parties.create(
        "gateway",
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


def outbox_enrolment_code(
    engine: Engine, key: SecretsKeys, party: str, purpose: str = "enrolment"
) -> str:
    """The last enrolment code (or code of another ``purpose``: "unlock") the
    outbox holds for ``party`` ("parties/{id}" or the id), decrypted with the
    server's key: the e-mail as it will be sent, for servers whose outbox
    does not run (tests of one layer)."""
    party_id = party.removeprefix("parties/")
    with engine.connect() as connection:
        payloads = connection.scalars(
            select(models.OutboxMessage.payload)
            .where(models.OutboxMessage.kind == "email_code")
            .order_by(models.OutboxMessage.create_time.desc())
        )
        for payload in payloads:
            if payload.get("purpose") == purpose and payload["party"] == party_id:
                code_id = uuid.UUID(payload["code_id"])
                return at_rest.decrypt(key, bytes.fromhex(payload["code"]), code_id.bytes).decode()
    raise LookupError(f"no {purpose} code for {party}")


def enrolled(
    service: IdentityService, now: dt.datetime, engine: Engine, key: SecretsKeys
) -> tuple[uuid.UUID, pyotp.TOTP]:
    """A proofed party that enrolled a password and a TOTP device with the
    enrolment code the proofing e-mailed it."""
    party = proofed(service, now)
    code = outbox_enrolment_code(engine, key, str(party))
    return party, totp_of(service.credentials.enroll(party, code, PASSWORD))
