"""Name corrections: what a correction must say, and the document sealed."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from lre.server.domain.corrections import (
    NameCorrection,
    Names,
    check_basis,
    corrected,
    document,
)
from lre.server.domain.errors import InvalidArgument

MISSPELT = Names("Camille", "Dupond", None)


def test_a_person_is_corrected_to_complete_names_that_differ() -> None:
    assert corrected(True, MISSPELT, Names(" Camille ", "Dupont", "ignored")) == Names(
        "Camille", "Dupont", None
    )
    for wanted, field in (
        (Names("Camille", "", None), "family_name"),
        (Names("Camille", "Dupond", None), "family_name"),  # nothing to correct
        (Names("Camille", "D" * 201, None), "family_name"),
    ):
        with pytest.raises(InvalidArgument) as refused:
            corrected(True, MISSPELT, wanted)
        assert refused.value.field == field


def test_a_company_is_corrected_by_its_company_name_only() -> None:
    assert corrected(
        False, Names(None, None, "Bailleur SRL"), Names("x", "y", "Bailleur SARL")
    ) == (Names(None, None, "Bailleur SARL"))
    with pytest.raises(InvalidArgument) as refused:
        corrected(False, Names(None, None, "A"), Names(None, None, " "))
    assert refused.value.field == "company_name"


def test_a_correction_names_its_basis_and_operator() -> None:
    for basis, operator, field in (
        ("", "desk", "basis"),
        ("x" * 501, "d", "basis"),
        ("id", "", "operator_id"),
    ):
        with pytest.raises(InvalidArgument) as refused:
            check_basis(basis, operator)
        assert refused.value.field == field


def test_the_sealed_document_says_who_changed_what_on_what_basis() -> None:
    correction = NameCorrection(
        uuid.uuid4(),
        uuid.uuid4(),
        dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.UTC),
        MISSPELT.to_dict(),
        Names("Camille", "Dupont", None).to_dict(),
        "eID claims presented with the notice code",
        "desk-5",
        "operator.lre.test",
    )
    sealed = document(correction, "LRE")
    assert sealed == document(correction, "LRE")  # canonical
    parsed = json.loads(sealed)
    assert parsed["format"] == "lre-correction/1"
    assert parsed["correctionId"] == correction.name
    assert parsed["time"] == "2026-12-06T10:00:00.000000Z"
    assert Names.from_dict(parsed["before"]) == MISSPELT
    assert parsed["after"]["familyName"] == "Dupont"
    assert (parsed["basis"], parsed["operatorId"]) == (correction.basis, "desk-5")
