"""An envelope's parts as declared: what a deposit refuses before reading content."""

from __future__ import annotations

import pytest

from lre.server.domain.errors import InvalidArgument
from lre.server.services.custody.intake import DeclaredPart, check_envelope


@pytest.mark.parametrize(
    "media_type",
    [
        "application/pdf",
        "image/svg+xml",
        "text/plain; charset=utf-8",
        'text/plain;charset="utf-8"',
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ],
)
def test_a_media_type_is_taken(media_type: str) -> None:
    check_envelope("r-1", [DeclaredPart("a.pdf", media_type, 3)])


@pytest.mark.parametrize(
    "media_type", ["", "not a type", "text/", "/plain", "a/b c", "text/plain; charset", "x" * 128]
)
def test_what_is_not_a_media_type_is_refused_naming_the_part(media_type: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_envelope(
            "r-1", [DeclaredPart("a.pdf", "application/pdf", 3), DeclaredPart("b", media_type, 1)]
        )
    assert refused.value.field == "envelope.parts[1].media_type"
