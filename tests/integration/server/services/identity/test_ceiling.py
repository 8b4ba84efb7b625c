"""The ceiling per caller (SQLite and PostgreSQL): a caller that forwards a
new end user at each wrong password never locks a source out, but all its
end users' failures against the party are counted together, and at
CALLER_CEILING_FACTOR times the threshold the caller, every end user of it,
is locked out of the party (journaled with scope "caller", counted as a
lockout), twice as long the next time; another caller is not. A success
through the caller clears its count; the unlock code asked for through it
lifts the lock, one code a minute for all its end users."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.domain.errors import AuthenticationFailed, FailedPrecondition, TooManyAttempts
from lre.server.domain.identity import Source
from lre.server.services.identity import IdentityPolicy, IdentityService
from lre.server.services.identity.throttles import CALLER_CEILING_FACTOR
from lre.server.storage import db
from tests.support.journal import security_journal
from tests.support.parties import PASSWORD, Enrol, outbox_enrolment_code
from tests.support.services import KEY, Clock

THRESHOLD = 2
CEILING = THRESHOLD * CALLER_CEILING_FACTOR
GATEWAY = "gateway.example"
PORTAL = Source.of("portal.example", "192.0.2.1")
WRONG = "not the password!"


@pytest.fixture
def policy() -> IdentityPolicy:
    return IdentityPolicy(secrets_key=KEY, lockout_threshold=THRESHOLD)


_FORWARDED = itertools.count(1)


def _end_users() -> Iterator[Source]:
    """The gateway's sources, an end user never forwarded before each time."""
    return (Source.of(GATEWAY, f"2001:db8::{next(_FORWARDED):x}") for _ in itertools.count())


def _guess(service: IdentityService, party: uuid.UUID, source: Source) -> Exception:
    try:
        service.sessions.create(party, WRONG, "000000", None, source)
    except (AuthenticationFailed, TooManyAttempts) as exc:
        return exc
    raise AssertionError("a wrong password opened a session")


def _locked_out(service: IdentityService, party: uuid.UUID) -> float | None:
    """Guesses from new end users of the gateway up to its ceiling, refused
    until the last: the lockout's length in seconds."""
    sources = _end_users()
    answers = [_guess(service, party, next(sources)) for _ in range(CEILING)]
    assert all(type(a) is AuthenticationFailed for a in answers[:-1]), answers
    last = answers[-1]
    assert isinstance(last, TooManyAttempts)
    return last.retry_after


def test_a_caller_cycling_end_users_meets_its_ceiling_and_no_other_caller_does(
    service: IdentityService, enrol: Enrol, database: sessionmaker[DbSession], clock: Clock
) -> None:
    party, totp = enrol()
    lockouts = REGISTRY.get_sample_value("lre_identity_lockouts_total") or 0.0
    assert _locked_out(service, party) == 15 * 60
    # Every end user of the gateway, even with the right factors.
    with pytest.raises(TooManyAttempts):
        service.sessions.create(party, PASSWORD, totp.at(clock.now), None, Source.of(GATEWAY))
    # Another caller is not: the party's own portal opens its session.
    assert service.sessions.create(party, PASSWORD, totp.at(clock.now), None, PORTAL).token
    assert REGISTRY.get_sample_value("lre_identity_lockouts_total") == lockouts + 1
    entries = security_journal(database)
    locked = [e for e in entries if e["kind"] == "locked_out"]
    assert [(e["scope"], e["purpose"]) for e in locked] == [("caller", "session")]
    # One failure per end user: no source was ever locked out.
    failed = [e["failedAttempts"] for e in entries if e.get("reason") == "wrong_credentials"]
    assert failed == ["1"] * CEILING

    # Once the lockout ends, the next one at the ceiling is twice as long.
    clock.advance(minutes=15, seconds=1)
    assert _locked_out(service, party) == 30 * 60


def test_a_success_through_the_caller_clears_its_count(
    service: IdentityService, enrol: Enrol, clock: Clock
) -> None:
    party, totp = enrol()
    sources = _end_users()
    for _ in range(CEILING - 1):
        assert type(_guess(service, party, next(sources))) is AuthenticationFailed
    assert service.sessions.create(party, PASSWORD, totp.at(clock.now), None, next(sources)).token
    # Counting from zero again: the ceiling is a whole allowance away.
    for _ in range(CEILING - 1):
        assert type(_guess(service, party, next(sources))) is AuthenticationFailed
    assert isinstance(_guess(service, party, next(sources)), TooManyAttempts)


def test_the_unlock_code_asked_through_the_caller_lifts_its_ceiling(
    service: IdentityService, enrol: Enrol, database: sessionmaker[DbSession], clock: Clock
) -> None:
    party, totp = enrol()
    _locked_out(service, party)
    asking, other = Source.of(GATEWAY, "2001:db8::aaaa"), Source.of(GATEWAY, "2001:db8::bbbb")
    with pytest.raises(FailedPrecondition):  # another caller has nothing to unlock
        service.unlocks.send_code(party, PORTAL)
    code_id, _expiry = service.unlocks.send_code(party, asking)
    with pytest.raises(TooManyAttempts):  # one code a minute for all the caller's end users
        service.unlocks.send_code(party, other)
    code = outbox_enrolment_code(db.engine_of(database), KEY, str(party), "unlock")
    with pytest.raises(FailedPrecondition):  # kept on the asking source's row
        service.unlocks.unlock(party, code_id, code, other)
    service.unlocks.unlock(party, code_id, code, asking)
    # Every end user of the caller is let in again.
    assert service.sessions.create(party, PASSWORD, totp.at(clock.now), None, other).token
    kinds = [e["kind"] for e in security_journal(database)]
    assert kinds.count("unlocked") == 1 and kinds.count("unlock_code_issued") == 1
