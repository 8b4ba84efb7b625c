"""One e-mail address, plainly written, or a refusal saying why."""

from __future__ import annotations

import pytest

from lre.server.domain.addresses import email_address, email_problem
from lre.server.domain.errors import InvalidArgument


@pytest.mark.parametrize(
    "address",
    [
        "courrier@dest.example",
        "jean.dupont+lre@mail.example.fr",
        "o'brien@example.org",
        "a@b.co",
        "x" * 64 + "@example.org",
        "user@" + ".".join(["a" * 63] * 3) + ".example",
    ],
)
def test_plain_addresses_are_accepted(address: str) -> None:
    assert email_problem(address) is None
    assert email_address(address, "party.email") == address


@pytest.mark.parametrize(
    "address",
    [
        "root,victim@example.org",  # two recipients to smtplib
        "victim@example.org,root@example.org",
        "a@b@example.org",
        '"Bank" <x@evil.example>',
        "Bank <x@evil.example>",
        "<x@example.org>",
        '"quoted local"@example.org',
        "x@example.org (comment)",
        "x @example.org",
        "x@example.org\r\nBcc: y@example.org",
        "x\x00@example.org",
        "x@[127.0.0.1]",
        "x@127.0.0.1",
        "x@localhost",
        "x@-example.org",
        "x@example-.org",
        "x@example..org",
        ".x@example.org",
        "x.@example.org",
        "x..y@example.org",
        "x" * 65 + "@example.org",
        "x@" + "a" * 64 + ".org",
        "x@" + ".".join(["a" * 60] * 5) + ".org",  # over 254 in all
        "dupont@exämple.fr",
        "",
        "@example.org",
        "x@",
    ],
)
def test_anything_else_is_refused_with_the_field_named(address: str) -> None:
    assert email_problem(address) is not None
    with pytest.raises(InvalidArgument) as raised:
        email_address(address, "party.email")
    assert raised.value.field == "party.email"
