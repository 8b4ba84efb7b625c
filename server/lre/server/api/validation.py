"""The strings of every request to the server, checked at the edge.

The gRPC process runs these rules on each request message before a servicer
sees it (lre.runtime.fields): no control characters anywhere, at most as many
characters as the column a field is stored in (its length is read from the
storage models by the composition root, so the two cannot drift apart), and
e-mail addresses through the domain's one parser.
A field with no rule here gets the default cap of lre.runtime.fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lre.runtime.fields import Rule, Rules, validator
from lre.server.domain.addresses import email_problem

# The length of a column, by table and column name (given by the composition root).
ColumnLength = Callable[[str, str], int]

# Request field -> the (table, column) it lands in.
COLUMNS: dict[str, tuple[str, str]] = {
    "lre.v1.Party.given_name": ("parties", "given_name"),
    "lre.v1.Party.family_name": ("parties", "family_name"),
    "lre.v1.Party.company_name": ("parties", "company_name"),
    "lre.v1.Party.email": ("parties", "email"),
    "lre.v1.CreatePartyRequest.request_id": ("parties", "request_id"),
    "lre.v1.LetterEnvelope.request_id": ("letters", "request_id"),
    "lre.v1.ContentPart.filename": ("letter_parts", "filename"),
    "lre.v1.ContentPart.media_type": ("letter_parts", "media_type"),
    "lre.v1.GrantConsentRequest.request_id": ("consents", "request_id"),
    "lre.v1.GrantConsentRequest.method": ("consents", "method"),
    "lre.v1.ProofWithEidAssertionRequest.nonce": ("used_nonces", "nonce"),
    "lre.v1.CreateWebhookRequest.request_id": ("webhooks", "request_id"),
    "lre.v1.CreateWebhookRequest.url": ("webhooks", "url"),
}

# Fields stored inside JSON or evidence documents, or not stored at all, whose
# sensible bound is not the default.
OTHERS: dict[str, Rule] = {
    # The postal address is kept as JSON and printed in evidence.
    "lre.v1.PostalAddress.lines": Rule(max_length=200),
    "lre.v1.PostalAddress.postal_code": Rule(max_length=20),
    "lre.v1.PostalAddress.locality": Rule(max_length=100),
    "lre.v1.PostalAddress.country_code": Rule(max_length=2),
    # Free text: line breaks are allowed, nothing else.
    "lre.v1.RefuseLetterRequest.reason": Rule(max_length=500, multiline=True),
    "lre.v1.RecordBounceRequest.diagnostic": Rule(max_length=1000, multiline=True),
    # What a notice prints, typed back: the same bound for both calls.
    "lre.v1.VerifyNotificationRequest.letter_reference": Rule(max_length=64),
    "lre.v1.VerifyNotificationRequest.verification_code": Rule(max_length=64),
    "lre.v1.ClaimLetterRequest.letter_reference": Rule(max_length=64),
    "lre.v1.ClaimLetterRequest.verification_code": Rule(max_length=64),
    # A signed JWT from the eID broker may carry certificates.
    "lre.v1.ProofWithEidAssertionRequest.id_token": Rule(max_length=16384),
}

EMAILS = {"lre.v1.Party.email"}


def rules(length_of: ColumnLength) -> Rules:
    found = {
        name: Rule(max_length=length_of(*column), parse=email_problem if name in EMAILS else None)
        for name, column in COLUMNS.items()
    }
    return {**found, **OTHERS}


def checker(length_of: ColumnLength) -> Callable[[Any], dict[str, str]]:
    """The check the gRPC process runs on every request message."""
    return validator(rules(length_of))
