"""Means of authentication over real databases, real scrypt and TOTP."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from prometheus_client import REGISTRY

from lre.server.domain.errors import (
    AuthenticationFailed,
    FailedPrecondition,
    TooManyAttempts,
)
from lre.server.services.identity import IdentityService
from tests.integration.services.conftest import Clock
from tests.support.parties import PASSWORD, enrolled, person


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
    service: IdentityService, clock: Clock, password: str, code_offset_s: int | None, reason: str
) -> None:
    party, totp = enrolled(service, clock.now)
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


def test_a_code_is_good_once(service: IdentityService, clock: Clock) -> None:
    party, totp = enrolled(service, clock.now)
    code = totp.at(clock.now)
    service.sessions.create(party, PASSWORD, code)
    with pytest.raises(AuthenticationFailed):
        service.sessions.create(party, PASSWORD, code)
    clock.advance(seconds=30)
    service.sessions.create(party, PASSWORD, totp.at(clock.now))


def test_repeated_failures_lock_the_party_out_for_a_while(
    service: IdentityService, clock: Clock
) -> None:
    party, totp = enrolled(service, clock.now)
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
