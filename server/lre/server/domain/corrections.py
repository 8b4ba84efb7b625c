"""Correcting a party's names: a misspelt addressee is exactly what makes
binding its real eID fail (domain.proofing), so the correction is an event
of its own, never an edit of the row: who corrected what, from which values
to which, on what basis, sealed by the provider and in the log; the proofs
made after it name the new spelling and mention the correction, and
``verify-log`` reads the earlier proofs against the party's history.

An operator decides, on what the person presented: the eID claims or the
certificate whose proofing was refused as a mismatch (the refusal is in the
journal), an identity document, a court decision. ``basis`` says which.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from lre.server.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from lre.server.domain.personal_names import name_problem

FORMAT = "lre-correction/1"
NAME_FIELDS = ("given_name", "family_name", "company_name")


@dataclass(frozen=True)
class Names:
    """The names the service writes in proofs (R53-2 items 1 and 2)."""

    given_name: str | None
    family_name: str | None
    company_name: str | None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "givenName": self.given_name,
            "familyName": self.family_name,
            "companyName": self.company_name,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Names:
        return cls(values.get("givenName"), values.get("familyName"), values.get("companyName"))


@dataclass(frozen=True)
class NameCorrection:
    """One correction of a party's names, as stored and sealed."""

    id: uuid.UUID
    party_id: uuid.UUID
    correct_time: dt.datetime
    before: dict[str, Any]
    after: dict[str, Any]
    basis: str
    operator_id: str
    operator_certificate: str
    document: bytes = b""
    seal: bytes = b""

    @property
    def name(self) -> str:
        return f"parties/{self.party_id}/corrections/{self.id}"


def corrected(natural_person: bool, current: Names, wanted: Names) -> Names:
    """The party's names after the correction: InvalidArgument, naming the
    field, when they are incomplete for the kind of party, too long, or the
    same as now (a correction changes something)."""
    given, family, company = (
        (value or "").strip() or None
        for value in (wanted.given_name, wanted.family_name, wanted.company_name)
    )
    if natural_person:
        if not given or not family:
            raise InvalidArgument("family_name", "a natural person needs given and family names")
        company = None
    elif not company:
        raise InvalidArgument("company_name", "a legal person needs a company name")
    else:
        given = family = None
    if max(len(given or ""), len(family or "")) > 200 or len(company or "") > 300:
        raise InvalidArgument("family_name", "names at most 200 characters, companies 300")
    for field, value in zip(NAME_FIELDS, (given, family, company), strict=True):
        if value and (problem := name_problem(value)) is not None:
            raise InvalidArgument(field, problem)
    names = Names(given, family, company)
    if names == current:
        raise InvalidArgument("family_name", "these are the party's names already")
    return names


def check_sender_correction(
    sender: uuid.UUID, senders: set[uuid.UUID], notified: bool, proofed: bool
) -> None:
    """A sender corrects its own addressee's names, as it typed them, only
    while they are nobody else's word: it alone wrote to the party, nothing
    was notified to it yet (the notice would name no one, but the person may
    have claimed it), and nobody was proofed as that party. Otherwise the
    person's identity is at stake and an operator decides on what the person
    presents."""
    if sender not in senders or senders != {sender}:
        raise NotFound("no such addressee of this sender's")
    if notified or proofed:
        raise FailedPrecondition(
            "the addressee was notified or proofed: an operator corrects it on "
            "what the person presents"
        )


def check_basis(basis: str, operator_id: str) -> None:
    if not basis.strip() or len(basis) > 500:
        raise InvalidArgument(
            "basis", "what the correction rests on is required (at most 500 characters)"
        )
    if not operator_id.strip() or len(operator_id) > 100:
        raise InvalidArgument("operator_id", "required, at most 100 characters")


def document(correction: NameCorrection, issuer: str) -> bytes:
    """What the signer seals: canonical JSON, like the evidence."""
    return json.dumps(
        {
            "format": FORMAT,
            "correctionId": correction.name,
            "party": f"parties/{correction.party_id}",
            "time": correction.correct_time.astimezone(dt.UTC)
            .isoformat(timespec="microseconds")
            .replace("+00:00", "Z"),
            "issuer": issuer,
            "before": correction.before,
            "after": correction.after,
            "basis": correction.basis,
            "operatorId": correction.operator_id,
            "operatorCertificate": correction.operator_certificate,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
