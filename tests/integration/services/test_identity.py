"""IdentityService over real databases (SQLite and PostgreSQL), real scrypt and TOTP."""

from __future__ import annotations

import datetime as dt
import json
import threading
import urllib.parse
import uuid

import pyotp
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text

from lre.server.domain import identity
from lre.server.domain.errors import (
    AuthenticationFailed,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    TooManyAttempts,
)
from lre.server.domain.identity import AssuranceLevel
from lre.server.domain.letters import PartyKind
from lre.server.services.identity import IdentityService, NewParty
from lre.server.storage import models
from tests.integration.services.conftest import Clock

PASSWORD = "correct horse battery staple"


def person(
    service: IdentityService, request_id: str | None = None, professional: bool = False
) -> uuid.UUID:
    party = service.create_party(
        request_id or str(uuid.uuid4()),
        NewParty(
            PartyKind.NATURAL_PERSON, professional, "camille@example.org", "Camille", "Dupont"
        ),
    )
    return party.id


def proofed(service: IdentityService, clock: Clock) -> uuid.UUID:
    party = person(service)
    service.record_document_check(
        party, "passport", "19AB12345", clock.now + dt.timedelta(days=900), "op-7"
    )
    return party


def enrolled(service: IdentityService, clock: Clock) -> tuple[uuid.UUID, pyotp.TOTP]:
    party = proofed(service, clock)
    service.set_password(party, PASSWORD)
    uri = service.enroll_totp(party)
    secret = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0]
    return party, pyotp.TOTP(secret)


def test_create_party_is_idempotent_and_validated(service: IdentityService) -> None:
    first = person(service, "req-1")
    assert person(service, "req-1") == first
    assert person(service, "req-2") != first
    for new, field in (
        (NewParty(PartyKind.NATURAL_PERSON, False, "not-an-address", "A", "B"), "party.email"),
        (NewParty(PartyKind.NATURAL_PERSON, False, "a@example.org", "A", ""), "party.family_name"),
        (NewParty(PartyKind.LEGAL_PERSON, True, "a@example.org"), "party.company_name"),
    ):
        with pytest.raises(InvalidArgument) as raised:
            service.create_party(str(uuid.uuid4()), new)
        assert raised.value.field == field
    with pytest.raises(NotFound):
        service.get_party(uuid.uuid4())


def test_the_same_request_id_sent_twice_at_once_creates_one_party(service: IdentityService) -> None:
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
    with service._sessions() as session:
        assert session.scalar(select(func.count()).select_from(models.Party)) == 1


def test_document_check_proofs_at_substantial_and_keeps_no_number(
    service: IdentityService, clock: Clock
) -> None:
    party = person(service)
    assert service.level(party) is None
    record = service.record_document_check(
        party, "passport", "19AB12345", clock.now + dt.timedelta(days=30), "op-7"
    )
    assert record.level is AssuranceLevel.SUBSTANTIAL
    assert service.level(party) is AssuranceLevel.SUBSTANTIAL
    with service._sessions() as session:
        stored = json.dumps(
            session.execute(text("SELECT details FROM identity_records")).scalar_one()
        )
    assert "19AB12345" not in stored and "document_number_hmac" in stored
    clock.advance(days=31)
    assert service.level(party) is None  # the document expired
    with pytest.raises(InvalidArgument) as raised:
        service.record_document_check(
            party, "passport", "19AB12345", clock.now - dt.timedelta(days=1), "op-7"
        )
    assert raised.value.field == "document_expire_time"
    with pytest.raises(NotFound):
        service.record_document_check(
            uuid.uuid4(), "passport", "1", clock.now + dt.timedelta(days=9), "op"
        )


def test_means_of_authentication_only_after_proofing(service: IdentityService) -> None:
    party = person(service)
    with pytest.raises(FailedPrecondition):
        service.set_password(party, PASSWORD)
    with pytest.raises(FailedPrecondition):
        service.enroll_totp(party)


def test_password_and_totp_give_a_session_custody_accepts(
    service: IdentityService, clock: Clock
) -> None:
    party, totp = enrolled(service, clock)
    issued = service.create_session(party, PASSWORD, totp.at(clock.now))
    session = service.authenticate(issued.token)
    assert session.party_id == str(party) and session.level is AssuranceLevel.SUBSTANTIAL
    assert identity.require_sender(session, clock.now) is session
    assert identity.require_recipient(session, clock.now) is session
    with service._sessions() as db_session:
        stored = db_session.execute(text("SELECT token_hash FROM sessions")).scalar_one()
        secret = db_session.execute(text("SELECT totp_secret FROM credentials")).scalar_one()
    assert issued.token.encode() not in bytes(stored)
    assert totp.secret.encode() not in bytes(secret)


@pytest.mark.parametrize(
    ("password", "code_offset_s", "reason"),
    [
        ("wrong password here", 0, "wrong password"),
        (PASSWORD, 300, "code from five minutes later"),
        (PASSWORD, None, "malformed code"),
    ],
)
def test_wrong_factors_are_refused_alike(
    service: IdentityService, clock: Clock, password: str, code_offset_s: int | None, reason: str
) -> None:
    party, totp = enrolled(service, clock)
    code = (
        "12ab56"
        if code_offset_s is None
        else totp.at(clock.now + dt.timedelta(seconds=code_offset_s))
    )
    with pytest.raises(AuthenticationFailed, match=r"^authentication failed$"):
        service.create_session(party, password, code)


def test_unknown_and_unproofed_parties_fail_like_a_wrong_password(service: IdentityService) -> None:
    with pytest.raises(AuthenticationFailed, match=r"^authentication failed$"):
        service.create_session(uuid.uuid4(), PASSWORD, "123456")
    with pytest.raises(AuthenticationFailed, match=r"^authentication failed$"):
        service.create_session(person(service), PASSWORD, "123456")


def test_a_code_is_good_once(service: IdentityService, clock: Clock) -> None:
    party, totp = enrolled(service, clock)
    code = totp.at(clock.now)
    service.create_session(party, PASSWORD, code)
    with pytest.raises(AuthenticationFailed):
        service.create_session(party, PASSWORD, code)
    clock.advance(seconds=30)
    service.create_session(party, PASSWORD, totp.at(clock.now))


def test_repeated_failures_lock_the_party_out_for_a_while(
    service: IdentityService, clock: Clock
) -> None:
    party, totp = enrolled(service, clock)
    lockouts = REGISTRY.get_sample_value("lre_identity_lockouts_total") or 0.0
    for _ in range(4):
        with pytest.raises(AuthenticationFailed):
            service.create_session(party, "wrong password here", totp.at(clock.now))
    with pytest.raises(TooManyAttempts):
        service.create_session(party, "wrong password here", totp.at(clock.now))
    assert REGISTRY.get_sample_value("lre_identity_lockouts_total") == lockouts + 1
    # Locked: even the right factors are refused.
    with pytest.raises(TooManyAttempts):
        service.create_session(party, PASSWORD, totp.at(clock.now))
    clock.advance(minutes=16)
    assert service.create_session(party, PASSWORD, totp.at(clock.now)).token


def test_revoked_and_expired_sessions_authenticate_nobody(
    service: IdentityService, clock: Clock
) -> None:
    party, totp = enrolled(service, clock)
    revoked = service.create_session(party, PASSWORD, totp.at(clock.now))
    service.revoke_session(revoked.token)
    with pytest.raises(AuthenticationFailed):
        service.authenticate(revoked.token)
    clock.advance(seconds=30)
    expiring = service.create_session(party, PASSWORD, totp.at(clock.now))
    clock.advance(minutes=31)
    with pytest.raises(AuthenticationFailed):
        service.authenticate(expiring.token)
    with pytest.raises(AuthenticationFailed):
        service.authenticate("forged-token")


def test_consent_is_recorded_once_withdrawn_and_listed(service: IdentityService) -> None:
    recipient, sender, other = person(service), person(service, professional=True), person(service)
    assert not service.has_consent(recipient, sender)
    consent = service.grant_consent("c-1", recipient, sender, "signed-form")
    assert service.grant_consent("c-1", recipient, sender, "signed-form").id == consent.id
    assert (
        service.grant_consent("c-2", recipient, sender, "portal").id == consent.id
    )  # already active
    assert service.has_consent(recipient, sender) and not service.has_consent(recipient, other)
    identity.require_consent(
        identity.Recipient(str(recipient), professional=False),
        service.has_consent(recipient, sender),
    )
    withdrawn = service.withdraw_consent(consent.id)
    assert withdrawn.withdraw_time is not None and not service.has_consent(recipient, sender)
    again = service.grant_consent("c-3", recipient, sender, "portal")
    assert again.id != consent.id
    service.grant_consent("c-4", recipient, other, "portal")
    page, token = service.list_consents(recipient, page_size=2, page_token="")
    rest, last = service.list_consents(recipient, page_size=2, page_token=token)
    assert len(page) == 2 and len(rest) == 1 and last == ""
    with pytest.raises(InvalidArgument):
        service.list_consents(recipient, page_size=2, page_token="not-a-token")
    with pytest.raises(NotFound):
        service.grant_consent("c-5", recipient, uuid.uuid4(), "portal")
    with pytest.raises(InvalidArgument):
        service.grant_consent("c-6", recipient, recipient, "portal")
