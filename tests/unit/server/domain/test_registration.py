"""Registration identifiers: SIREN, SIRET (La Poste's rule too), and the
organizationIdentifier (2.5.4.97) forms, with their check digits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lre.server.domain.errors import InvalidArgument
from lre.server.domain.registration import luhn, parse, valid_siret

SIREN = "552100554"  # passes Luhn
SIRET = "55210055400013"


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        (SIREN, "NTRFR-552100554"),
        ("552 100 554", "NTRFR-552100554"),
        (SIRET, "NTRFR-55210055400013"),
        ("ntrfr-552100554", "NTRFR-552100554"),
        ("VATFR-96552100554", "VATFR-96552100554"),
        # La Poste: the sum of the digits is a multiple of 5, Luhn fails.
        ("35600000049837", "NTRFR-35600000049837"),
        ("35600000000048", "NTRFR-35600000000048"),  # its head office passes Luhn
        ("NTRBE-0876543210", "NTRBE-0876543210"),
        ("LEIXG-5493001KJTIIGC8Y1R12", "LEIXG-5493001KJTIIGC8Y1R12"),
        ("DE:HRB 12345", "DE:HRB12345"),
    ],
)
def test_accepted_identifiers_are_kept_in_the_certificate_form(written: str, stored: str) -> None:
    assert parse(written).value == stored


@pytest.mark.parametrize(
    "written",
    [
        "552100555",  # the SIREN's check digit
        "55210055400014",  # the SIRET's
        "55210055500013",  # a SIRET whose SIREN is wrong
        "35600000049838",  # La Poste's rule broken (and Luhn)
        "1234567",
        "VATFR-97552100554",  # the VAT key
        "XYZFR-552100554",  # no such scheme
        "LEIFR-5493001KJTIIGC8Y1R12",
        "LEIXG-5493001KJTIIGC8Y1R13",  # the LEI's check digits
        "",
        "NTRFR-",
    ],
)
def test_wrong_identifiers_are_refused_naming_the_field(written: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        parse(written)
    assert refused.value.field == "party.registration_id"


@given(st.text(alphabet="0123456789", min_size=14, max_size=14))
def test_a_siret_is_valid_by_luhn_or_by_la_postes_rule(siret: str) -> None:
    la_poste = siret.startswith("356000000") and sum(map(int, siret)) % 5 == 0
    assert valid_siret(siret) == (luhn(siret) or la_poste)


@given(st.text(alphabet="0123456789", min_size=9, max_size=9), st.integers(0, 8))
def test_one_changed_digit_is_always_caught(siren: str, position: int) -> None:
    """Luhn catches every single-digit error, which is why INSEE uses it."""
    if not luhn(siren):
        return
    digit = (int(siren[position]) + 1) % 10
    assert not luhn(siren[:position] + str(digit) + siren[position + 1 :])


def test_the_same_legal_person_by_siren_across_schemes() -> None:
    company = parse(SIRET)
    assert company.same_legal_person(parse(f"NTRFR-{SIREN}"))
    assert company.same_legal_person(parse("VATFR-96552100554"))
    assert not company.same_legal_person(parse("732829320"))
    assert not parse("NTRBE-0876543210").same_legal_person(parse("NTRBE-0876543211"))
