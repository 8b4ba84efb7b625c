"""The strings of every request to the server, checked at the edge.

The gRPC process runs these rules on each request message before a servicer
sees it (lre.runtime.fields): no control characters anywhere, at most as many
characters as the column a field is stored in (read from the models, so the
two cannot drift apart), and e-mail addresses through the domain's one parser.
A field with no rule here gets the default cap of lre.runtime.fields.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import InstrumentedAttribute

from lre.runtime.fields import Rule, Rules, validator
from lre.server.domain.addresses import email_problem
from lre.server.storage import models

# Request field -> the column it lands in.
COLUMNS: dict[str, InstrumentedAttribute[Any]] = {
    "lre.v1.Party.given_name": models.Party.given_name,
    "lre.v1.Party.family_name": models.Party.family_name,
    "lre.v1.Party.company_name": models.Party.company_name,
    "lre.v1.Party.email": models.Party.email,
    "lre.v1.CreatePartyRequest.request_id": models.Party.request_id,
    "lre.v1.LetterEnvelope.request_id": models.Letter.request_id,
    "lre.v1.ContentPart.filename": models.LetterPart.filename,
    "lre.v1.ContentPart.media_type": models.LetterPart.media_type,
    "lre.v1.GrantConsentRequest.request_id": models.Consent.request_id,
    "lre.v1.GrantConsentRequest.method": models.Consent.method,
    "lre.v1.ProofWithEidAssertionRequest.nonce": models.UsedNonce.nonce,
    "lre.v1.CreateWebhookRequest.request_id": models.Webhook.request_id,
    "lre.v1.CreateWebhookRequest.url": models.Webhook.url,
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
    # A signed JWT from the eID broker may carry certificates.
    "lre.v1.ProofWithEidAssertionRequest.id_token": Rule(max_length=16384),
}

EMAILS = {"lre.v1.Party.email"}


def _length(column: InstrumentedAttribute[Any]) -> int:
    kind = column.property.columns[0].type
    assert isinstance(kind, String) and kind.length is not None, column
    return kind.length


def rules() -> Rules:
    found = {
        name: Rule(max_length=_length(column), parse=email_problem if name in EMAILS else None)
        for name, column in COLUMNS.items()
    }
    return {**found, **OTHERS}


check = validator(rules())
