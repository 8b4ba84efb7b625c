"""Proofing binds a person: random name pairs, only matching identities pass."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lre.server.domain.proofing import (
    Claimed,
    IdentityMismatch,
    Verified,
    bind,
    evidence_name,
    normalised,
    qualified_for,
    same_full_name,
)

# Names as people write them: letters (accented too), spaces, hyphens, apostrophes.
NAMES = st.text(
    alphabet=st.sampled_from("abcdeéèfgiklmnoöprstuüzABCDÉMNZ -'"), min_size=1, max_size=20
).filter(lambda n: normalised(n) != "")


def person(given: str, family: str) -> Claimed:
    return Claimed(natural_person=True, given_name=given, family_name=family, company_name=None)


@given(NAMES, NAMES, NAMES, NAMES)
def test_only_a_matching_person_passes(
    given_a: str, family_a: str, given_b: str, family_b: str
) -> None:
    # Given names in any order (several given names are written in several orders).
    same = sorted(normalised(given_a).split()) == sorted(normalised(given_b).split()) and (
        normalised(family_a) == normalised(family_b)
    )
    verified = Verified(given_name=given_b, family_name=family_b)
    if same:
        assert bind(person(given_a, family_a), verified)["family_name"] == family_b
    else:
        with pytest.raises(IdentityMismatch):
            bind(person(given_a, family_a), verified)


@given(NAMES, NAMES)
def test_only_a_matching_organisation_passes(company_a: str, company_b: str) -> None:
    claimed = Claimed(False, None, None, company_a)
    verified = Verified(organisation_name=company_b, organisation_identifier="NTRFR-123456789")
    if normalised(company_a) == normalised(company_b):
        assert bind(claimed, verified)["organisation_identifier"] == "NTRFR-123456789"
    else:
        with pytest.raises(IdentityMismatch):
            bind(claimed, verified)


@given(NAMES)
def test_how_a_name_is_written_does_not_count(name: str) -> None:
    variants = (name.upper(), f"  {name}  ", name.replace(" ", "-"), name.replace("-", " "))
    for variant in variants:
        assert bind(person(name, name), Verified(given_name=variant, family_name=variant))


def test_accents_hyphens_and_apostrophes_are_spelling_not_identity() -> None:
    matched = bind(
        person("Jean-Luc", "D'Orsay"),
        Verified(given_name="JEAN LUC", family_name="DORSAY", birth_date=dt.date(1980, 2, 29)),
    )
    assert matched == {
        "family_name": "DORSAY",
        "given_name": "JEAN LUC",
        "birth_date": "1980-02-29",
    }
    assert normalised("Éloïse  Müller") == normalised("eloise muller")


def test_mallory_does_not_proof_camille_and_silence_is_no_match() -> None:
    with pytest.raises(IdentityMismatch, match="family_name"):
        bind(person("Camille", "Dupont"), Verified(given_name="Camille", family_name="Martin"))
    with pytest.raises(IdentityMismatch, match="given_name"):
        bind(person("Camille", "Dupont"), Verified(given_name="Mallory", family_name="Dupont"))
    with pytest.raises(IdentityMismatch, match="states no family_name"):
        bind(person("Camille", "Dupont"), Verified(given_name="Camille"))
    with pytest.raises(IdentityMismatch, match="states no organisation_name"):
        bind(Claimed(False, None, None, "Dest SA"), Verified(given_name="Camille"))


def test_proofs_name_the_person_as_proofed_where_a_proofing_matched() -> None:
    typed = Claimed(True, "camille", "dupont", None)
    assert evidence_name(typed, None) == "camille dupont"  # not proofed (yet): as registered
    matched = {"given_name": "CAMILLE", "family_name": "DUPONT", "birth_date": "1990-04-12"}
    assert evidence_name(typed, matched) == "CAMILLE DUPONT"
    company = Claimed(False, None, None, "Dest sa")
    assert evidence_name(company, {"organisation_name": "DEST SA"}) == "DEST SA"
    assert evidence_name(company, {}) == "Dest sa"  # a document check matches no names


def test_one_rule_for_binding_and_for_verify_log() -> None:
    assert bind(
        person("Jean Pierre", "Dupont"), Verified(given_name="Pierre-Jean", family_name="DUPONT")
    )
    # What verify-log compares: the proofed spelling in evidence, the registered row.
    assert same_full_name("JEAN PIERRE DUPONT", "Pierre Jean", "Dupont")
    assert same_full_name("Éloïse Müller", "eloise", "MULLER")
    assert not same_full_name("Jean Dupont", "Jean", "Dupond")
    assert not same_full_name("Dupont Jean", "Jean", "Dupont")  # the family name is last
    assert not same_full_name("Jean Pierre Dupont", "Jean", "Dupont")


@pytest.mark.parametrize(
    ("natural", "qc_type", "names_person", "why"),
    [
        (True, "qct_esign", True, None),
        (True, "qct_eseal", True, "its QcType qct_eseal does not proof a natural person"),
        (True, "qct_web", True, "its QcType qct_web does not proof a natural person"),
        (False, "qct_eseal", False, None),
        (False, "qct_esign", True, None),
        (False, "qct_esign", False, "a signature certificate must name the natural person"),
        (False, "qct_web", False, "its QcType qct_web does not proof a legal person"),
    ],
)
def test_which_qualified_certificates_proof_whom(
    natural: bool, qc_type: str, names_person: bool, why: str | None
) -> None:
    found = qualified_for(natural, qc_type, names_person)
    assert found == why or (why is not None and found is not None and found.startswith(why))


def test_a_person_naming_the_company_is_recorded_as_acting_for_it() -> None:
    company = Claimed(False, None, None, "Bailleur SARL")
    matched = bind(
        company,
        Verified(given_name="Camille", family_name="Dupont", organisation_name="BAILLEUR SARL"),
    )
    assert matched == {"organisation_name": "BAILLEUR SARL", "acting_person": "Camille Dupont"}
    assert "acting_person" not in bind(company, Verified(organisation_name="Bailleur SARL"))
