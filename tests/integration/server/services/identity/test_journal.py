"""The security journal written by the identity services, read back from the
log (SQLite and PostgreSQL): every event kind, in the transaction of what it
records (a rolled-back change leaves none, a failed attempt that changes
nothing else still has its entry), and nothing a party would not want kept
for years: no password, code, token, address or document number."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.domain import journal
from lre.server.domain.errors import AuthenticationFailed, FailedPrecondition, TooManyAttempts
from lre.server.services.identity import IdentityService
from tests.support.journal import Journal, security_journal
from tests.support.parties import PASSWORD, Enrol, person
from tests.support.services import KEY, Clock


def _kinds(entries: Journal, party: uuid.UUID) -> list[str]:
    return [e["kind"] for e in entries if e["subject"] == f"parties/{party}"]


def test_a_party_s_life_is_journaled_without_its_secrets(
    service: IdentityService, enrol: Enrol, database: sessionmaker[DbSession], clock: Clock
) -> None:
    party, totp = enrol()
    entries = security_journal(database)
    assert _kinds(entries, party) == [
        "credentials_enrolled",
        "enrolment_code_issued",
        "identity_proofed",
    ]
    proofed = next(e for e in entries if e["kind"] == "identity_proofed")
    assert proofed["method"] == "document_check" and proofed["level"] == "substantial"
    assert proofed["operatorId"] == "op-7" and proofed["personPresent"] == "false"
    assert proofed["documentNumberHmac"] and "19AB12345" not in json.dumps(entries)

    clock.advance(seconds=1)
    issued = service.sessions.create(party, PASSWORD, totp.at(clock.now))
    clock.advance(seconds=31)
    code_id, _ = service.credentials.send_email_code(party, PASSWORD)
    clock.advance(seconds=1)
    service.credentials.set_password(party, "another long password")
    clock.advance(seconds=1)
    service.credentials.enroll_totp(party)
    clock.advance(seconds=1)
    service.sessions.revoke(issued.token)
    entries = security_journal(database)
    assert _kinds(entries, party)[3:] == [
        "session_created",
        "email_code_issued",
        "password_set",
        "totp_enrolled",
        "session_revoked",
    ]
    created, code, *_, revoked = [e for e in entries if e["subject"] == f"parties/{party}"][3:]
    assert created["sessionHmac"] == revoked["sessionHmac"]
    assert created["sessionHmac"] == journal.keyed(
        KEY.current, "session", hashlib.sha256(issued.token.encode()).digest()
    )
    assert created["oneTimeElement"] == "totp" and created["level"] == "substantial"
    assert code["codeId"] == str(code_id)
    text = json.dumps(entries)
    for secret in (PASSWORD, "another long password", issued.token, "camille@example.org"):
        assert secret not in text


def test_failures_and_lockouts_are_journaled_even_when_nothing_else_commits(
    service: IdentityService, enrol: Enrol, database: sessionmaker[DbSession], clock: Clock
) -> None:
    party, totp = enrol()
    stranger = uuid.uuid4()
    unknown = REGISTRY.get_sample_value("lre_identity_unknown_party_attempts_total") or 0
    with pytest.raises(AuthenticationFailed):
        service.sessions.create(stranger, PASSWORD, "123456")  # no such party
    unproofed = person(service)
    with pytest.raises(AuthenticationFailed):
        service.credentials.send_email_code(unproofed, PASSWORD)
    for _ in range(4):
        clock.advance(seconds=1)
        with pytest.raises(AuthenticationFailed):
            service.sessions.create(party, "wrong password!", totp.at(clock.now))
    clock.advance(seconds=1)
    with pytest.raises(TooManyAttempts):  # the fifth: locked out
        service.sessions.create(party, "wrong password!", totp.at(clock.now))
    clock.advance(seconds=1)
    with pytest.raises(TooManyAttempts):  # locked: refused before any comparison
        service.sessions.create(party, PASSWORD, totp.at(clock.now))
    entries = security_journal(database)
    # A party that does not exist: counted, not journaled (anyone may name one).
    assert not [e for e in entries if e["subject"] == f"parties/{stranger}"]
    assert REGISTRY.get_sample_value("lre_identity_unknown_party_attempts_total") == unknown + 1
    (email,) = [e for e in entries if e["subject"] == f"parties/{unproofed}"]
    assert (email["purpose"], email["reason"]) == ("email_code", "unknown_or_unproofed")
    failed = [e for e in entries if e["subject"] == f"parties/{party}"][3:]
    failed[4:6] = sorted(failed[4:6], key=lambda e: e["kind"] == "locked_out")
    assert [(e["kind"], e.get("failedAttempts"), e.get("reason")) for e in failed] == [
        *[("authentication_failed", str(n), "wrong_credentials") for n in range(1, 6)],
        ("locked_out", None, None),
        ("authentication_failed", None, "locked_out"),
    ]
    assert failed[5]["lockedUntil"] > failed[5]["eventTime"]


def test_a_change_that_rolls_back_leaves_no_entry(
    service: IdentityService, database: sessionmaker[DbSession]
) -> None:
    unproofed = person(service)
    before = security_journal(database)
    with pytest.raises(FailedPrecondition):
        service.credentials.set_password(unproofed, "a long enough password")
    with pytest.raises(FailedPrecondition):
        service.credentials.enroll_totp(unproofed)
    assert security_journal(database) == before
