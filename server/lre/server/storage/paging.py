"""Pages of ordered queries, with opaque page tokens (AIP-158).

A token names its offset in one list: the list it was issued for (``scope``:
what is listed and under which parent), so that a token of another list, or
of the same list under another parent, is refused rather than read as an
offset there. It is not a secret: a caller who forges one only pages through
a list it may read anyway."""

from __future__ import annotations

import base64
import hashlib

from lre.server.domain.errors import InvalidArgument

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
# Far past any list a caller pages through; keeps an offset a database integer.
MAX_OFFSET = 1 << 31
NOT_ISSUED = "is not a token this service issued for this list"


def _tag(scope: str) -> str:
    return hashlib.sha256(scope.encode()).hexdigest()[:12]


def page(page_size: int, page_token: str, scope: str) -> tuple[int, int]:
    """(size, offset) of the page ``page_token`` asks of the list ``scope``."""
    if page_size < 0:
        raise InvalidArgument("page_size", "must not be negative")
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    if not page_token:
        return size, 0
    try:
        offset, _, tag = base64.urlsafe_b64decode(page_token.encode()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("page_token", NOT_ISSUED) from None
    if tag != _tag(scope) or not (offset.isascii() and offset.isdigit()) or len(offset) > 10:
        raise InvalidArgument("page_token", NOT_ISSUED)
    if int(offset) > MAX_OFFSET:
        raise InvalidArgument("page_token", NOT_ISSUED)
    return size, int(offset)


def next_token(offset: int, size: int, returned: int, scope: str) -> str:
    if returned < size:
        return ""
    return base64.urlsafe_b64encode(f"{offset + size}:{_tag(scope)}".encode()).decode()
