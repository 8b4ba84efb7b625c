"""Unlocking through the party's mailbox (SQLite and PostgreSQL): only a
source locked out of the party may have a code sent, to the party's address
through the outbox, kept on that source's row; a wrong code spends it;
another source can neither replace nor use it; the right one lifts that
source's lockout and nothing else; each step journaled without the code,
and a party that does not exist leaves no entry."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.domain.errors import AuthenticationFailed, FailedPrecondition, TooManyAttempts
from lre.server.domain.identity import Source
from lre.server.services.identity import IdentityService
from lre.server.storage import db
from tests.support.journal import security_journal
from tests.support.parties import PASSWORD, Enrol, outbox_enrolment_code
from tests.support.services import KEY, Clock

USER, GATEWAY = Source.of("portal", "203.0.113.7"), Source.of("gateway")


def test_a_locked_out_user_unlocks_with_the_mailed_code_and_no_one_else_can(
    service: IdentityService, enrol: Enrol, database: sessionmaker[DbSession], clock: Clock
) -> None:
    party, totp = enrol()
    for source in (USER, GATEWAY):
        for attempt in range(5):
            with pytest.raises(TooManyAttempts if attempt == 4 else AuthenticationFailed):
                service.sessions.create(party, "wrong password!", totp.at(clock.now), None, source)
    with pytest.raises(FailedPrecondition):  # not locked out: nothing to unlock
        service.unlocks.send_code(party, Source.of("portal", "198.51.100.2"))

    def mailed() -> str:
        return outbox_enrolment_code(db.engine_of(database), KEY, str(party), "unlock")

    code_id, _expiry = service.unlocks.send_code(party, USER)
    with pytest.raises(TooManyAttempts):  # one a minute
        service.unlocks.send_code(party, USER)
    wrong = "000000" if mailed() != "000000" else "111111"
    with pytest.raises(FailedPrecondition):
        service.unlocks.unlock(party, code_id, wrong, USER)
    with pytest.raises(FailedPrecondition):  # the wrong guess spent it
        service.unlocks.unlock(party, code_id, mailed(), USER)

    clock.advance(minutes=1)
    code_id, _expiry = service.unlocks.send_code(party, USER)
    code = mailed()
    # The gateway, locked out too, asks for its own: the user's stays good.
    service.unlocks.send_code(party, GATEWAY)
    with pytest.raises(FailedPrecondition):  # and spends the gateway's own
        service.unlocks.unlock(party, code_id, code, GATEWAY)
    service.unlocks.unlock(party, code_id, code, USER)
    clock.advance(seconds=30)
    with pytest.raises(AuthenticationFailed):  # counting again, from zero
        service.sessions.create(party, "wrong password!", totp.at(clock.now), None, USER)
    clock.advance(seconds=30)
    assert service.sessions.create(party, PASSWORD, totp.at(clock.now), None, USER).token
    with pytest.raises(TooManyAttempts):  # the gateway is still locked out
        service.sessions.create(party, PASSWORD, totp.at(clock.now), None, GATEWAY)

    entries = security_journal(database)
    mine = [e for e in entries if e["subject"] == f"parties/{party}"]
    kinds = [e["kind"] for e in mine]
    assert kinds.count("unlock_code_issued") == 3 and kinds.count("unlocked") == 1
    # The user's wrong guess, and the gateway's try with the user's code.
    assert [e["reason"] for e in mine if e.get("purpose") == "unlock"] == ["wrong_credentials"] * 2
    assert code not in str(entries)

    # A party that does not exist: the same answers, no entry.
    stranger = uuid.uuid4()
    with pytest.raises(FailedPrecondition):
        service.unlocks.send_code(stranger, USER)
    with pytest.raises(FailedPrecondition):
        service.unlocks.unlock(stranger, uuid.uuid4(), "123456", USER)
    assert not [e for e in security_journal(database) if e["subject"] == f"parties/{stranger}"]
