"""Why a recipient of a mailing gets no letter."""

from __future__ import annotations

import uuid

import pytest

from lre.server.domain.evidence import PartyDetails
from lre.server.domain.mailings import (
    CONSENT_MISSING,
    INVALID_ADDRESS,
    PARTY_UNKNOWN,
    duplicates,
    party_id,
    refusal,
)

PARTY = uuid.uuid4()
GOOD = PartyDetails("Camille Martin", "camille@example.org", str(PARTY))


def test_a_party_name_gives_its_id_and_anything_else_none() -> None:
    assert party_id(f"parties/{PARTY}") == PARTY
    for other in (
        "camille@example.org",
        f"letters/{PARTY}",
        "parties/12",
        "",
        f"parties/{PARTY}/x",
    ):
        assert party_id(other) is None


@pytest.mark.parametrize(
    ("party", "found", "consented", "expected"),
    [
        (None, None, False, INVALID_ADDRESS),
        (PARTY, None, False, PARTY_UNKNOWN),
        (PARTY, (PartyDetails("X", "no-at-sign", str(PARTY)), True), True, INVALID_ADDRESS),
        (PARTY, (PartyDetails("X", "a b@example.org", str(PARTY)), True), True, INVALID_ADDRESS),
        (PARTY, (GOOD, False), False, CONSENT_MISSING),
        (PARTY, (GOOD, False), True, None),
        (PARTY, (GOOD, True), False, None),  # a professional needs no consent
    ],
)
def test_refusal(
    party: uuid.UUID | None,
    found: tuple[PartyDetails, bool] | None,
    consented: bool,
    expected: str | None,
) -> None:
    assert refusal(party, found, consented) == expected


def test_a_recipient_named_twice_is_found_however_it_is_written() -> None:
    party = uuid.uuid4()
    names = [
        f"parties/{party}",
        "someone@example.org",
        f"parties/{str(party).upper()}",
        f"parties/{uuid.uuid4()}",
        " Someone@Example.org",
    ]
    assert duplicates(names) == {2: 0, 4: 1}
    assert duplicates([f"parties/{uuid.uuid4()}" for _ in range(3)]) == {}
