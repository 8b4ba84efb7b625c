"""Sessions: opened with two factors, found by token, revoked, expired."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.domain import identity
from lre.server.domain.errors import AuthenticationFailed, AuthenticationRequired
from lre.server.domain.identity import AssuranceLevel
from lre.server.services.identity import IdentityService
from tests.support.parties import PASSWORD, Enrol
from tests.support.services import Clock


def test_password_and_totp_give_a_session_custody_accepts(
    service: IdentityService, enrol: Enrol, clock: Clock, database: sessionmaker[DbSession]
) -> None:
    party, totp = enrol()
    issued = service.sessions.create(party, PASSWORD, totp.at(clock.now))
    session = service.authenticate(issued.token)
    assert session.party_id == str(party) and session.level is AssuranceLevel.SUBSTANTIAL
    with pytest.raises(AuthenticationRequired):  # a remote document check: not a sender
        identity.require_sender(session, clock.now)
    assert identity.require_recipient(session, clock.now) is session
    with database() as db_session:
        stored = db_session.execute(text("SELECT token_hash FROM sessions")).scalar_one()
        secret = db_session.execute(text("SELECT totp_secret FROM credentials")).scalar_one()
    assert issued.token.encode() not in bytes(stored)
    assert totp.secret.encode() not in bytes(secret)


def test_revoked_and_expired_sessions_authenticate_nobody(
    service: IdentityService, enrol: Enrol, clock: Clock
) -> None:
    party, totp = enrol()
    revoked = service.sessions.create(party, PASSWORD, totp.at(clock.now))
    service.sessions.revoke(revoked.token)
    with pytest.raises(AuthenticationFailed):
        service.authenticate(revoked.token)
    clock.advance(seconds=30)
    expiring = service.sessions.create(party, PASSWORD, totp.at(clock.now))
    clock.advance(minutes=31)
    with pytest.raises(AuthenticationFailed):
        service.authenticate(expiring.token)
    with pytest.raises(AuthenticationFailed):
        service.authenticate("forged-token")
