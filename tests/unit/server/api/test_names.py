"""Resource names: one name for one resource, as the service writes it."""

from __future__ import annotations

import uuid

import pytest

from lre.server.api.names import parse_evidence_name, parse_id
from lre.server.domain.errors import InvalidArgument

ID = uuid.UUID("1ccf0bad-0827-4058-8153-3165d0588bdf")


def test_the_name_the_service_writes_is_read() -> None:
    assert parse_id(f"letters/{ID}", "name", "letters") == ID
    assert parse_evidence_name(f"letters/{ID}/evidence/{ID}", "name") == (ID, ID)
    assert parse_id(f"letters/{str(ID).upper()}", "name", "letters") == ID  # hex in either case


@pytest.mark.parametrize(
    "text",
    [
        ID.hex,  # no hyphens
        f"{{{ID}}}",
        f"urn:uuid:{ID}",
        "\u0663" * 32,  # Arabic-Indic digits, which int(..., 16) reads as 3
        f" {ID}",
    ],
)
def test_other_spellings_of_an_id_are_invalid_argument(text: str) -> None:
    for parse in (
        lambda: parse_id(f"letters/{text}", "name", "letters"),
        lambda: parse_evidence_name(f"letters/{ID}/evidence/{text}", "name"),
    ):
        with pytest.raises(InvalidArgument) as refused:
            parse()
        assert refused.value.field == "name"
