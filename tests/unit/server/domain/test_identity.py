"""What it takes to deposit and to receive (eIDAS 24(1), 44(1); CPCE R53-1, L100)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import pytest

from lre.server.domain.errors import (
    AuthenticationRequired,
    DepositRefused,
    InvalidArgument,
    PermissionDenied,
)
from lre.server.domain.identity import (
    AssuranceLevel,
    FactorCategory,
    Recipient,
    Session,
    Source,
    check_professional_declaration,
    require_consent,
    require_own,
    require_recipient,
    require_recipient_or_operator,
    require_sender,
)

NOW = dt.datetime(2026, 5, 4, 10, 0, tzinfo=dt.UTC)
STRONG = Session(
    party_id="p1",
    level=AssuranceLevel.SUBSTANTIAL,
    factors=frozenset({FactorCategory.KNOWLEDGE, FactorCategory.POSSESSION}),
    one_time_element=True,
    authenticated_at=NOW - dt.timedelta(minutes=1),
    expires_at=NOW + dt.timedelta(hours=1),
)

WEAK = {
    "no session": None,
    "expired": dataclasses.replace(STRONG, expires_at=NOW),
    "proofed low": dataclasses.replace(STRONG, level=AssuranceLevel.LOW),
    "one factor": dataclasses.replace(STRONG, factors=frozenset({FactorCategory.KNOWLEDGE})),
    "no one-time code": dataclasses.replace(STRONG, one_time_element=False),
}


@pytest.mark.parametrize("case", list(WEAK))
@pytest.mark.parametrize("require", [require_sender, require_recipient])
def test_weak_sessions_are_refused(case: str, require) -> None:
    with pytest.raises(AuthenticationRequired):
        require(WEAK[case], NOW)


@pytest.mark.parametrize("level", [AssuranceLevel.SUBSTANTIAL, AssuranceLevel.HIGH])
def test_strong_sessions_at_substantial_or_high_pass(level: AssuranceLevel) -> None:
    session = dataclasses.replace(STRONG, level=level)
    assert require_sender(session, NOW, min_level=AssuranceLevel.SUBSTANTIAL) is session
    assert require_recipient(session, NOW) is session


def test_a_sender_needs_level_high_unless_configured_lower() -> None:
    high = dataclasses.replace(STRONG, level=AssuranceLevel.HIGH)
    assert require_sender(high, NOW) is high
    with pytest.raises(AuthenticationRequired, match="below level high"):
        require_sender(STRONG, NOW)  # substantial


def test_a_recipient_decides_only_on_a_fresh_authentication() -> None:
    stale = dataclasses.replace(
        STRONG, level=AssuranceLevel.HIGH, authenticated_at=NOW - dt.timedelta(minutes=16)
    )
    assert require_sender(stale, NOW) is stale
    with pytest.raises(AuthenticationRequired, match="again"):
        require_recipient(stale, NOW)


def test_consent_is_required_of_consumers_only() -> None:
    require_consent(Recipient("r1", professional=True), consent_given=False)
    require_consent(Recipient("r2", professional=False), consent_given=True)
    with pytest.raises(DepositRefused) as refused:
        require_consent(Recipient("r3", professional=False), consent_given=False)
    assert (refused.value.code, refused.value.field) == ("consent_missing", "recipient")


def test_only_the_party_own_session_acts_on_the_party() -> None:
    assert require_own(STRONG, "p1") is STRONG
    with pytest.raises(AuthenticationRequired) as missing:
        require_own(None, "p1")
    # No session is a client's "log in", not "your session is too weak".
    assert missing.value.reason == "SESSION_REQUIRED"
    with pytest.raises(PermissionDenied):
        require_own(STRONG, "p2")


def test_consent_comes_from_the_recipient_or_an_operator() -> None:
    require_recipient_or_operator(STRONG, "p1", operator=False)
    require_recipient_or_operator(None, "p2", operator=True)
    with pytest.raises(PermissionDenied):  # the sender's session, for the recipient
        require_recipient_or_operator(STRONG, "p2", operator=False)
    with pytest.raises(AuthenticationRequired):
        require_recipient_or_operator(None, "p2", operator=False)


def test_no_gateway_declares_a_natural_person_professional() -> None:
    check_professional_declaration(natural_person=False, professional=True)
    check_professional_declaration(natural_person=True, professional=False)
    with pytest.raises(InvalidArgument) as raised:
        check_professional_declaration(natural_person=True, professional=True)
    assert raised.value.field == "party.professional"


def test_a_source_has_its_callers_ceiling_and_keeps_the_key_rows_were_stored_under() -> None:
    one, two = Source.of("portal.example", "192.0.2.1"), Source.of("portal.example", "192.0.2.2")
    assert one.key != two.key and one.caller == two.caller
    assert Source.of("gateway.example", "192.0.2.1").caller != one.caller
    # Throttle rows from before ceilings keep their meaning; no name in clear.
    assert one.key == hashlib.sha256(b"portal.example\n192.0.2.1").hexdigest()[:32]
    assert one.caller.startswith("caller:") and "portal" not in one.caller
    assert len("notice:" + one.caller) <= 64  # auth_throttles.source
