"""Page tokens: each names its offset in the one list it was issued for."""

from __future__ import annotations

import base64

import pytest

from lre.server.domain.errors import InvalidArgument
from lre.server.storage.paging import MAX_PAGE_SIZE, next_token, page

LETTERS = "letters of parties/a"


def _raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def test_a_token_leads_to_the_next_page_of_its_own_list() -> None:
    token = next_token(0, 10, 10, LETTERS)
    assert page(10, token, LETTERS) == (10, 10)
    assert next_token(10, 10, 3, LETTERS) == ""  # a short page is the last
    assert page(0, "", LETTERS)[0] == 20 and page(1000, "", LETTERS)[0] == MAX_PAGE_SIZE


@pytest.mark.parametrize(
    "token",
    [
        next_token(0, 10, 10, "letters of parties/b"),  # the same list under another parent
        next_token(0, 10, 10, "consents of parties/a"),  # another list
        _raw("10"),  # a bare offset, as tokens were before
        _raw("9223372036854775808:" + next_token(0, 1, 1, LETTERS)),
        "zzz",
        _raw("٣:x"),
    ],
)
def test_a_token_of_another_list_or_forged_is_invalid_argument(token: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        page(10, token, LETTERS)
    assert refused.value.field == "page_token"


def test_an_offset_past_any_list_is_refused_not_an_overflow() -> None:
    tag = base64.urlsafe_b64decode(next_token(0, 1, 1, LETTERS)).decode().partition(":")[2]
    for offset in ("9223372036854775808", "1" + "0" * 30, "2147483649"):
        with pytest.raises(InvalidArgument):
            page(10, _raw(f"{offset}:{tag}"), LETTERS)
    with pytest.raises(InvalidArgument):
        page(-1, "", LETTERS)
