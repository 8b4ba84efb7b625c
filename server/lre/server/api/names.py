"""Resource names (AIP-122): ``{collection}/{uuid}``."""

from __future__ import annotations

import uuid

from lre.server.domain.errors import InvalidArgument


def _canonical(text: str) -> uuid.UUID:
    """A UUID as the service writes it (hyphenated hex digits, in either
    case: answers name it in lower case). uuid.UUID also reads braces,
    "urn:uuid:", no hyphens and any Unicode digit ("٣"), none of which the
    service issues: one resource, one spelling of its id."""
    parsed = uuid.UUID(text)
    if str(parsed) != text.lower():
        raise ValueError(text)
    return parsed


def parse_id(name: str, field: str, collection: str) -> uuid.UUID:
    """``{collection}/{uuid}`` to the uuid, or INVALID_ARGUMENT naming ``field``."""
    prefix = f"{collection}/"
    try:
        if not name.startswith(prefix):
            raise ValueError(name)
        return _canonical(name[len(prefix) :])
    except ValueError:
        raise InvalidArgument(field, f"must be {collection}/{{id}}") from None


def parse_evidence_name(name: str, field: str) -> tuple[uuid.UUID, uuid.UUID]:
    """``letters/{id}/evidence/{id}`` to the two ids, or INVALID_ARGUMENT naming ``field``."""
    shape = "must be letters/{id}/evidence/{id}"
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "letters" or parts[2] != "evidence":
        raise InvalidArgument(field, shape)
    try:
        return _canonical(parts[1]), _canonical(parts[3])
    except ValueError:
        raise InvalidArgument(field, shape) from None


def parse_refusal_name(name: str, field: str) -> tuple[uuid.UUID, int, uuid.UUID]:
    """``mailings/{id}/recipients/{position}/evidence/{id}`` (a mailing's
    refused recipient's sealed rejection) to its three parts, or
    INVALID_ARGUMENT naming ``field``."""
    parts = name.split("/")
    shape = "must be mailings/{id}/recipients/{position}/evidence/{id}"
    if (
        len(parts) != 6
        or parts[0] != "mailings"
        or parts[2] != "recipients"
        or parts[4] != "evidence"
        or not (parts[3].isascii() and parts[3].isdigit())
        or len(parts[3]) > 6
        or str(int(parts[3])) != parts[3]  # one name for one refusal: no leading zero
    ):
        raise InvalidArgument(field, shape)
    return (
        parse_id(f"mailings/{parts[1]}", field, "mailings"),
        int(parts[3]),
        parse_id(f"evidence/{parts[5]}", field, "evidence"),
    )
