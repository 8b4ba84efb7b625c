"""Names printed in proofs: something a reader sees, nothing invisible."""

from __future__ import annotations

import pytest

from lre.server.domain.personal_names import name_problem


@pytest.mark.parametrize(
    "name",
    [
        "Dupont",
        "Élodie",
        "O'Brien-Smith",
        "管理",
        "SCI Lot 7",
        "\u0645\u0647\u0631\u200c\u0646\u0627\u0632",
        "X Æ A-12",
    ],
)
def test_a_name_a_reader_sees_is_one(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("   ", "a letter or a digit"),
        ("\u0301", "a letter or a digit"),  # a lone combining accent
        ("\u3164", "a letter or a digit"),  # the Hangul filler, a "letter" that draws nothing
        ("-.'", "a letter or a digit"),
        ("Jean\U000e0041", "invisible"),  # a tag character
        ("Je\u200ban", "invisible"),  # a zero-width space
        ("\ufeffJean", "invisible"),  # a byte order mark
        ("Jean\u200f", "invisible"),  # a right-to-left mark
        ("Jean\ue000", "private-use"),
        ("Jean\uffff", "unassigned"),  # a noncharacter
        ("Jean\ufe0f", "variation-selector"),
    ],
)
def test_a_name_of_nothing_visible_or_with_invisible_characters_is_not(
    name: str, problem: str
) -> None:
    found = name_problem(name)
    assert found is not None and problem in found
