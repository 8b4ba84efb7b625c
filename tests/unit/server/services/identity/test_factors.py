"""Passwords: length is the rule, but not length of nothing."""

from __future__ import annotations

import pytest

from lre.server.domain.errors import InvalidArgument
from lre.server.domain.identity import Credential
from lre.server.services.identity.factors import hashed, password_ok


@pytest.mark.parametrize(
    "password", [" " * 12, "a" * 16, "ab" * 8, "\u3000" * 12, "  abcabcabc  ", "x" * 11, "y" * 257]
)
def test_a_blank_short_long_or_repeated_password_is_refused(password: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        hashed(password)
    assert refused.value.field == "password"


def test_a_passphrase_is_taken_and_checked() -> None:
    stored = hashed("correct horse battery staple")
    credential = Credential(party_id=None, password_hash=stored)  # type: ignore[arg-type]
    assert password_ok(credential, "correct horse battery staple")
    assert not password_ok(credential, "correct horse battery stapl")
