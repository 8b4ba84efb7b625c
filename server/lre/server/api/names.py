"""Resource names (AIP-122): ``{collection}/{uuid}``."""

from __future__ import annotations

import uuid

from lre.server.domain.errors import InvalidArgument


def parse_id(name: str, field: str, collection: str) -> uuid.UUID:
    """``{collection}/{uuid}`` to the uuid, or INVALID_ARGUMENT naming ``field``."""
    prefix = f"{collection}/"
    try:
        if not name.startswith(prefix):
            raise ValueError(name)
        return uuid.UUID(name[len(prefix) :])
    except ValueError:
        raise InvalidArgument(field, f"must be {collection}/{{id}}") from None
