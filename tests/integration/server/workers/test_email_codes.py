"""One-time codes by e-mail: sent through the outbox to a real SMTP server
(aiosmtpd), then used with the password for a session; SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from sqlalchemy import select

from lre.server.domain.errors import AuthenticationFailed, TooManyAttempts
from lre.server.domain.letters import PartyKind
from lre.server.services.identity import NewParty
from lre.server.storage import db, models
from tests.support.mail import Inbox, text_of
from tests.support.world import World

PASSWORD = "correct horse battery staple"
ADDRESS = "camille@example.org"


def _party(world: World, smtp_port: int, password: bool = True) -> uuid.UUID:
    """A proofed party; with ``password``, enrolled (password and TOTP) with
    the enrolment code the proofing e-mailed it."""
    party = world.identity.parties.create(
        "gateway",
        str(uuid.uuid4()),
        NewParty(PartyKind.NATURAL_PERSON, False, ADDRESS, "Camille", "Dupont"),
    ).id
    world.identity.proofing.record_document_check(
        party, "passport", "19AB12345", world.clock.now + dt.timedelta(days=900), "op-7"
    )
    with Inbox(smtp_port) as inbox:
        while world.dispatcher.dispatch():
            pass
    (message,) = inbox.messages
    assert message["To"] == ADDRESS
    found = re.search(rf"Account: parties/{party}\s+Enrolment code: ([A-Z0-9-]+)", text_of(message))
    assert found, text_of(message)
    if password:
        world.identity.credentials.enroll(party, found.group(1), PASSWORD)
    return party


def _deliver(world: World, inbox: Inbox) -> str:
    """Runs the dispatcher; the code in the one message it sends."""
    before = len(inbox.messages)
    while world.dispatcher.dispatch():
        pass
    assert len(inbox.messages) == before + 1
    message = inbox.messages[-1]
    assert message["To"] == ADDRESS
    codes = set(re.findall(r"\b(\d{6})\b", text_of(message)))
    assert len(codes) == 1, codes
    return str(codes.pop())


def test_an_emailed_code_with_the_password_opens_a_strong_session_once(
    world: World, smtp_port: int
) -> None:
    party = _party(world, smtp_port)
    code_id, expire_time = world.identity.credentials.send_email_code(party, PASSWORD)
    assert expire_time == world.clock.now + dt.timedelta(minutes=10)
    with Inbox(smtp_port) as inbox:
        code = _deliver(world, inbox)

    # Stored as an HMAC; once sent, the outbox keeps no copy, not even encrypted.
    with db.sessions(world.engine)() as session:
        credential = session.get(models.Credential, party)
        assert credential is not None and credential.email_code_hmac is not None
        assert code.encode() not in credential.email_code_hmac
        (message,) = (
            m
            for m in session.scalars(
                select(models.OutboxMessage).where(models.OutboxMessage.kind == "email_code")
            )
            if m.payload.get("purpose") != "enrolment"
        )
        assert "code" not in message.payload and code not in str(message.payload)

    issued = world.identity.sessions.create(party, PASSWORD, email_code=(code_id, code))
    session_ = world.identity.authenticate(issued.token)
    assert session_.strong and session_.one_time_element
    with pytest.raises(AuthenticationFailed):
        world.identity.sessions.create(party, PASSWORD, email_code=(code_id, code))


def test_wrong_replaced_and_expired_codes_are_refused(world: World, smtp_port: int) -> None:
    party = _party(world, smtp_port)
    with Inbox(smtp_port) as inbox:
        first_id, _ = world.identity.credentials.send_email_code(party, PASSWORD)
        first = _deliver(world, inbox)
        with pytest.raises(AuthenticationFailed):  # the code without the password
            world.identity.sessions.create(party, "not the password", email_code=(first_id, first))
        world.clock.advance(seconds=61)
        second_id, _ = world.identity.credentials.send_email_code(party, PASSWORD)
        second = _deliver(world, inbox)
    wrong = f"{(int(second) + 1) % 10**6:06d}"
    for attempt in ((first_id, first), (second_id, wrong), (first_id, second)):
        with pytest.raises(AuthenticationFailed):
            world.identity.sessions.create(party, PASSWORD, email_code=attempt)
    world.clock.advance(minutes=10)
    with pytest.raises(TooManyAttempts):  # the fifth failure in a row locks the party out
        world.identity.sessions.create(party, PASSWORD, email_code=(second_id, second))


def test_an_expired_code_is_not_sent(world: World, smtp_port: int) -> None:
    party = _party(world, smtp_port)
    world.identity.credentials.send_email_code(party, PASSWORD)
    world.clock.advance(minutes=10)
    with Inbox(smtp_port) as inbox:
        while world.dispatcher.dispatch():
            pass
        assert inbox.messages == []
    with db.sessions(world.engine)() as session:  # only the enrolment code, sent before
        (enrolment,) = session.scalars(select(models.OutboxMessage)).all()
        assert enrolment.payload["purpose"] == "enrolment" and "code" not in enrolment.payload


def test_codes_need_a_password_and_come_at_most_once_a_minute(world: World, smtp_port: int) -> None:
    # A party with no password yet answers as a wrong password does.
    with pytest.raises(AuthenticationFailed):
        world.identity.credentials.send_email_code(
            _party(world, smtp_port, password=False), PASSWORD
        )
    party = _party(world, smtp_port)
    world.identity.credentials.send_email_code(party, PASSWORD)
    with pytest.raises(TooManyAttempts):
        world.identity.credentials.send_email_code(party, PASSWORD)
    world.clock.advance(seconds=60)
    world.identity.credentials.send_email_code(party, PASSWORD)
