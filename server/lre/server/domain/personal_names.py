"""What a party's or a delegate's name must be to be printed in a proof: at
least one letter or digit a reader sees, and no invisible character beside
it (proofs name the parties, R53-2 items 1 and 2; a name of spaces, of a lone
accent or of zero-width characters names nobody, and reads the same as
another name on paper)."""

from __future__ import annotations

import unicodedata

# Letters by category that draw nothing: the Hangul fillers.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
# The joiners that shape Persian and Indic names: format characters kept.
_JOINERS = frozenset("\u200c\u200d")
# Private use, unassigned and noncharacters, surrogates: no font draws them
# the same for every reader. Variation selectors change how the letter before
# them is drawn, and no two readers need see the same.
_NO_GLYPH = frozenset({"Co", "Cn", "Cs"})
_SELECTORS = frozenset(map(chr, [*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)]))


def name_problem(text: str) -> str | None:
    """Why ``text`` cannot be a name in a proof, or None."""
    if not any(unicodedata.category(c)[0] in "LN" and c not in _BLANK_LETTERS for c in text):
        return "must contain a letter or a digit"
    if any(unicodedata.category(c) == "Cf" and c not in _JOINERS for c in text):
        return "must not contain invisible formatting characters"
    if any(unicodedata.category(c) in _NO_GLYPH or c in _SELECTORS for c in text):
        return "must not contain private-use, unassigned or variation-selector characters"
    return None
