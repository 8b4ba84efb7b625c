"""Pages of ordered queries, with opaque page tokens (AIP-158)."""

from __future__ import annotations

import base64

from lre.server.domain.errors import InvalidArgument

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


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
