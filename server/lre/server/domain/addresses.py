"""E-mail addresses as the service accepts them: one mailbox, nothing else.

A notification is the start of a legal deadline (CPCE R53-3), so the address
it goes to must be exactly one mailbox. Mail parsers are lenient on purpose
(``root,victim@example.org`` is two recipients to smtplib, ``"Bank"
<x@evil.example>`` a display name and a mailbox); here an address is a bare
RFC 5321 ``Mailbox`` restricted to its common form: a dot-atom local part, an
ASCII host name. No quoted local parts, comments, display names, address
lists, IP literals or internationalised addresses.
"""

from __future__ import annotations

import re

from lre.server.domain.errors import InvalidArgument

# RFC 5321 4.5.3.1: local part 64 octets, a path 256 with its brackets.
MAX_LOCAL = 64
MAX_ADDRESS = 254
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def email_problem(text: str) -> str | None:
    """What keeps ``text`` from being one plain e-mail address, or None."""
    if not text.isascii():
        return "must be ASCII (internationalised addresses are not supported)"
    if len(text) > MAX_ADDRESS:
        return f"at most {MAX_ADDRESS} characters"
    local, at, domain = text.rpartition("@")
    if not at or "@" in local:
        return "must be one address, local-part@domain"
    if len(local) > MAX_LOCAL or not _LOCAL.fullmatch(local):
        return "the part before @ must be a plain mailbox name (no spaces, commas, quotes)"
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        return "the part after @ must be a host name"
    if labels[-1].isdigit():
        return "the part after @ must be a host name"
    return None


def email_address(text: str, field: str) -> str:
    """``text`` if it is one plain e-mail address; InvalidArgument naming ``field`` if not."""
    problem = email_problem(text)
    if problem is not None:
        raise InvalidArgument(field, problem)
    return text
