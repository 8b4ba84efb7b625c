"""Sessions: opened with two factors, found by token, revoked, expired."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.domain import identity
from lre.server.domain.errors import AuthenticationFailed, AuthenticationRequired
from lre.server.domain.identity import AssuranceLevel
from lre.server.services.identity import IdentityService
from lre.server.storage import db
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


def test_a_totp_code_in_other_digits_is_a_wrong_code(
    service: IdentityService, enrol: Enrol, clock: Clock
) -> None:
    party, totp = enrol()
    right = totp.at(clock.now)
    for wrong in ("".join(chr(ord(d) + 0xFEE0) for d in right), "²" * 6):  # fullwidth, superscript
        with pytest.raises(AuthenticationFailed):
            service.sessions.create(party, PASSWORD, wrong)
    assert service.authenticate(service.sessions.create(party, PASSWORD, right).token)


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


def test_an_expired_proofing_still_opens_a_session_that_reads_but_neither_sends_nor_decides(
    service: IdentityService, enrol: Enrol, clock: Clock, database: sessionmaker[DbSession]
) -> None:
    party, totp = enrol()
    clock.advance(days=901)  # past the identity document the proofing rested on
    assert service.parties.level(party) is None
    issued = service.sessions.create(party, PASSWORD, totp.at(clock.now))
    session = service.authenticate(issued.token)
    assert not session.proofing_current and session.strong
    assert session.level is AssuranceLevel.SUBSTANTIAL  # as it was proofed
    for decide in (identity.require_recipient, identity.require_sender):
        with pytest.raises(AuthenticationRequired, match="proofing has expired"):
            decide(session, clock.now)
    with database() as db_session:
        leaves = [
            json.loads(leaf)
            for leaf in db_session.execute(text("SELECT leaf FROM log_entries")).scalars()
        ]
    (opened,) = [leaf for leaf in leaves if leaf.get("kind") == "session_created"]
    assert opened["proofing"] == "expired"
    # A new proofing: the next session sends and decides again.
    service.proofing.record_document_check(
        party, "passport", "20CD", clock.now + dt.timedelta(days=900), "op-7"
    )
    renewed = service.authenticate(
        service.sessions.create(
            party, PASSWORD, totp.at(clock.now + dt.timedelta(seconds=30))
        ).token
    )
    assert renewed.proofing_current
    assert identity.require_recipient(renewed, clock.now) is renewed


def test_a_token_authenticates_only_through_the_caller_that_opened_it(
    service: IdentityService, enrol: Enrol, clock: Clock, database_url: str
) -> None:
    party, totp = enrol()
    issued = service.sessions.create(
        party, PASSWORD, totp.at(clock.now), caller="recipient-portal.lre.internal"
    )
    assert service.authenticate(issued.token, "recipient-portal.lre.internal").party_id == str(
        party
    )
    for other in ("sender-gateway.lre.internal", "", "recipient-portal.lre.internal,x"):
        with pytest.raises(AuthenticationFailed, match=r"^invalid or expired session$"):
            service.authenticate(issued.token, other)
        with pytest.raises(AuthenticationFailed, match=r"^invalid or expired session$"):
            service.sessions.revoke(issued.token, other)
    assert service.authenticate(issued.token, "recipient-portal.lre.internal")
    # Sessions opened before callers were recorded (migration 0022) have
    # none, and authenticate nobody from the migration on.
    plain = service.sessions.create(party, PASSWORD, totp.at(clock.now + dt.timedelta(seconds=30)))
    assert service.authenticate(plain.token)
    engine = db.make_engine(database_url)
    command.downgrade(db.alembic_config(engine), "0021")
    db.migrate(engine)
    engine.dispose()
    for token, caller in ((plain.token, ""), (issued.token, "recipient-portal.lre.internal")):
        with pytest.raises(AuthenticationFailed):
            service.authenticate(token, caller)
