"""Means of authentication over real databases, real scrypt and TOTP."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, text
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.domain.errors import (
    AuthenticationFailed,
    FailedPrecondition,
    TooManyAttempts,
)
from lre.server.domain.identity import AssuranceLevel
from lre.server.domain.letters import OutboxKind
from lre.server.services.identity import IdentityService
from lre.server.storage import db, models
from tests.support.parties import PASSWORD, Enrol, outbox_enrolment_code, person, proofed, totp_of
from tests.support.services import KEY, Clock


def test_means_of_authentication_only_after_proofing(service: IdentityService) -> None:
    party = person(service)
    with pytest.raises(FailedPrecondition):
        service.credentials.set_password(party, PASSWORD)
    with pytest.raises(FailedPrecondition):
        service.credentials.enroll_totp(party)


@pytest.mark.parametrize(
    ("password", "code_offset_s", "reason"),
    [
        ("wrong password here", 0, "wrong password"),
        (PASSWORD, 300, "code from five minutes later"),
        (PASSWORD, None, "malformed code"),
    ],
)
def test_wrong_factors_are_refused_alike(
    service: IdentityService,
    enrol: Enrol,
    clock: Clock,
    password: str,
    code_offset_s: int | None,
    reason: str,
) -> None:
    party, totp = enrol()
    code = (
        "12ab56"
        if code_offset_s is None
        else totp.at(clock.now + dt.timedelta(seconds=code_offset_s))
    )
    with pytest.raises(AuthenticationFailed, match=r"^authentication failed$"):
        service.sessions.create(party, password, code)


def test_unknown_and_unproofed_parties_fail_like_a_wrong_password(service: IdentityService) -> None:
    with pytest.raises(AuthenticationFailed, match=r"^authentication failed$"):
        service.sessions.create(uuid.uuid4(), PASSWORD, "123456")
    with pytest.raises(AuthenticationFailed, match=r"^authentication failed$"):
        service.sessions.create(person(service), PASSWORD, "123456")


def test_a_code_is_good_once(service: IdentityService, enrol: Enrol, clock: Clock) -> None:
    party, totp = enrol()
    code = totp.at(clock.now)
    service.sessions.create(party, PASSWORD, code)
    with pytest.raises(AuthenticationFailed):
        service.sessions.create(party, PASSWORD, code)
    clock.advance(seconds=30)
    service.sessions.create(party, PASSWORD, totp.at(clock.now))


def test_repeated_failures_lock_the_party_out_for_a_while(
    service: IdentityService, enrol: Enrol, clock: Clock
) -> None:
    party, totp = enrol()
    lockouts = REGISTRY.get_sample_value("lre_identity_lockouts_total") or 0.0
    for _ in range(4):
        with pytest.raises(AuthenticationFailed):
            service.sessions.create(party, "wrong password here", totp.at(clock.now))
    with pytest.raises(TooManyAttempts):
        service.sessions.create(party, "wrong password here", totp.at(clock.now))
    assert REGISTRY.get_sample_value("lre_identity_lockouts_total") == lockouts + 1
    # Locked: even the right factors are refused.
    with pytest.raises(TooManyAttempts):
        service.sessions.create(party, PASSWORD, totp.at(clock.now))
    clock.advance(minutes=16)
    assert service.sessions.create(party, PASSWORD, totp.at(clock.now)).token


def test_proofing_mails_an_enrolment_code_that_enrols_once(
    service: IdentityService, clock: Clock, database: sessionmaker[DbSession]
) -> None:
    party = proofed(service, clock.now)
    engine = db.engine_of(database)
    code = outbox_enrolment_code(engine, KEY, str(party))
    with database() as session:
        stored = json.dumps(
            session.execute(text("SELECT payload FROM outbox_messages")).scalar_one()
        )
        credential = session.get(models.Credential, party)
    assert code.replace("-", "") not in stored  # encrypted until sent, then dropped
    assert credential is not None and code.encode() not in (credential.enrolment_code_hmac or b"")
    with pytest.raises(AuthenticationFailed, match=r"^enrolment refused$"):
        service.credentials.enroll(party, "AAAA-AAAA-AAAA", PASSWORD)
    totp = totp_of(service.credentials.enroll(party, code.lower(), PASSWORD))
    assert service.sessions.create(party, PASSWORD, totp.at(clock.now)).token
    with pytest.raises(AuthenticationFailed):  # spent
        service.credentials.enroll(party, code, "another password here")


def test_an_enrolment_code_expires_and_wrong_codes_lock_out(
    service: IdentityService, clock: Clock, database: sessionmaker[DbSession]
) -> None:
    party = proofed(service, clock.now)
    code = outbox_enrolment_code(db.engine_of(database), KEY, str(party))
    clock.advance(hours=24)
    with pytest.raises(AuthenticationFailed):
        service.credentials.enroll(party, code, PASSWORD)
    other = proofed(service, clock.now)
    code = outbox_enrolment_code(db.engine_of(database), KEY, str(other))
    for _ in range(4):
        with pytest.raises(AuthenticationFailed):
            service.credentials.enroll(other, "WRONG-CODE-0000", PASSWORD)
    with pytest.raises(TooManyAttempts):
        service.credentials.enroll(other, "WRONG-CODE-0000", PASSWORD)
    with pytest.raises(TooManyAttempts):  # locked: even the right code waits
        service.credentials.enroll(other, code, PASSWORD)


def test_a_fresh_proofing_replaces_the_factors_and_ends_old_sessions(
    service: IdentityService, enrol: Enrol, clock: Clock, database: sessionmaker[DbSession]
) -> None:
    party, old_totp = enrol()
    old = service.sessions.create(party, PASSWORD, old_totp.at(clock.now))
    clock.advance(minutes=1)
    service.proofing.record_document_check(
        party, "id-card", "X1", clock.now + dt.timedelta(days=90), "op-2"
    )
    code = outbox_enrolment_code(db.engine_of(database), KEY, str(party))
    new_totp = totp_of(service.credentials.enroll(party, code, "a brand new password"))
    with pytest.raises(AuthenticationFailed):
        service.authenticate(old.token)
    clock.advance(seconds=30)
    with pytest.raises(AuthenticationFailed):
        service.sessions.create(party, PASSWORD, new_totp.at(clock.now))
    assert service.sessions.create(party, "a brand new password", new_totp.at(clock.now)).token


def test_an_email_code_needs_the_party_password(
    service: IdentityService, enrol: Enrol, clock: Clock
) -> None:
    party, _ = enrol()
    with pytest.raises(AuthenticationFailed):
        service.credentials.send_email_code(party, "not the password")
    with pytest.raises(AuthenticationFailed):
        service.credentials.send_email_code(uuid.uuid4(), "not the password")
    # Proofed, not enrolled yet: the same answer, nothing learnt of its state.
    with pytest.raises(AuthenticationFailed):
        service.credentials.send_email_code(proofed(service, clock.now), "not the password")
    code_id, _ = service.credentials.send_email_code(party, PASSWORD)
    assert code_id
    # One a minute: the second says when the next may go (RetryInfo).
    with pytest.raises(TooManyAttempts) as throttled:
        service.credentials.send_email_code(party, PASSWORD)
    assert throttled.value.retry_after is not None and 0 < throttled.value.retry_after <= 60


def test_a_proofing_below_the_party_s_level_issues_no_new_factors(
    service: IdentityService, clock: Clock, database: sessionmaker[DbSession]
) -> None:
    """Factors re-issued on a remote check would open sessions at the level
    of the earlier in-person one: a lower proofing is recorded, no code sent."""
    party = person(service)
    expires = clock.now + dt.timedelta(days=900)

    def codes() -> int:
        with database() as session:
            payloads = session.scalars(
                select(models.OutboxMessage.payload).where(
                    models.OutboxMessage.kind == OutboxKind.EMAIL_CODE
                )
            )
            return sum(
                p.get("purpose") == "enrolment" and p["party"] == str(party) for p in payloads
            )

    service.proofing.record_document_check(
        party, "passport", "19AB1", expires, "op-7", person_present=True
    )
    assert (service.parties.level(party), codes()) == (AssuranceLevel.HIGH, 1)
    remote = service.proofing.record_document_check(party, "passport", "19AB1", expires, "op-7")
    assert remote.level is AssuranceLevel.SUBSTANTIAL and codes() == 1
    service.proofing.record_document_check(
        party, "passport", "19AB1", expires, "op-8", person_present=True
    )
    assert codes() == 2  # at the party's level again: its factors may be replaced
