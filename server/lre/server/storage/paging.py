"""Pages of ordered queries, with opaque page tokens (AIP-158)."""

from __future__ import annotations

import base64
from typing import TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session as DbSession

from lre.server.domain.errors import InvalidArgument
from lre.server.storage import models

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20

Paged = TypeVar(
    "Paged",
    models.IdentityRecord,
    models.Consent,
    models.Letter,
    models.Charge,
    models.OutboxMessage,
    models.Webhook,
)


def paged(
    db: DbSession, query: Select[Paged], page_size: int, page_token: str
) -> tuple[list[Paged], str]:
    """One page of an ordered query and the token of the next ("" at the end)."""
    size, offset = page(page_size, page_token)
    rows = list(db.scalars(query.offset(offset).limit(size)))
    return rows, next_token(offset, size, len(rows))


def page(page_size: int, page_token: str) -> tuple[int, int]:
    if page_size < 0:
        raise InvalidArgument("page_size", "must not be negative")
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    if not page_token:
        return size, 0
    try:
        offset = int(base64.urlsafe_b64decode(page_token.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("page_token", "is not a token this service issued") from None
    if offset < 0:
        raise InvalidArgument("page_token", "is not a token this service issued")
    return size, offset


def next_token(offset: int, size: int, returned: int) -> str:
    return (
        base64.urlsafe_b64encode(str(offset + size).encode()).decode() if returned == size else ""
    )
