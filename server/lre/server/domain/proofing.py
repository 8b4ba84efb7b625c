"""Proofing binds a person: what a certificate or an eID verified must name
the party the proofs will name (eIDAS art. 24(1); domain brief §8).

Names are compared as people write them on different forms: case, accents,
whitespace, hyphens and apostrophes do not count ("Jean-Luc D'Orsay" matches
"JEAN LUC DORSAY"); letters do.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

from lre.server.domain import registration
from lre.server.domain.errors import FailedPrecondition, InvalidArgument

# The kind of identity document an operator checked, as a code ("passport",
# "id-card", "residence-permit"): it is printed in the record's summary and
# journaled, so no free text.
DOCUMENT_TYPE = re.compile(r"[a-z][a-z0-9_-]{0,63}")


def check_document(
    document_type: str,
    document_number: str,
    expires: dt.datetime | None,
    operator_id: str,
    now: dt.datetime,
) -> None:
    """What an operator's document check must state; InvalidArgument else."""
    if not DOCUMENT_TYPE.fullmatch(document_type):
        raise InvalidArgument(
            "document_type",
            'a code of at most 64 characters: a-z, 0-9, "-" and "_",'
            ' starting with a letter ("passport", "id-card")',
        )
    if not document_number.strip() or len(document_number) > 64:
        raise InvalidArgument("document_number", "required, at most 64 characters")
    if not operator_id or len(operator_id) > 128:
        raise InvalidArgument("operator_id", "required")
    if expires is None or expires <= now:
        raise InvalidArgument("document_expire_time", "the document must be valid today")


_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015]+")
_APOSTROPHES = re.compile(r"['\u2019\u02bc`]")


class IdentityMismatch(FailedPrecondition):
    """The verified identity is not the party's (FAILED_PRECONDITION); the
    message says which attribute differs, never the values."""


class NotQualified(FailedPrecondition):
    """A genuine certificate that is not a qualified one where level high by
    certificate requires it (FAILED_PRECONDITION): proofed at no level, since
    no lower level was assessed for that method; the message says why."""

    reason = "CERTIFICATE_NOT_QUALIFIED"


# Which qualified certificates (their QcType, ETSI EN 319 412-5) proof whom:
# a natural person by one for electronic signatures; a legal person by one
# for electronic seals, or by the signature certificate of a natural person
# naming it (EN 319 412-2 organisation attributes), recorded as acting for it.
# A website certificate proofs no one.
_QC_TYPES = {True: ("qct_esign",), False: ("qct_eseal", "qct_esign")}


def qualified_for(natural_person: bool, qc_type: str | None, names_person: bool) -> str | None:
    """Why a qualified certificate of this type does not proof this kind of
    party, or None; ``names_person``: its subject names a natural person."""
    kind = "a natural person" if natural_person else "a legal person"
    if qc_type not in _QC_TYPES[natural_person]:
        return f"its QcType {qc_type} does not proof {kind}"
    if qc_type == "qct_esign" and not names_person:
        return "a signature certificate must name the natural person holding it"
    return None


def normalised(name: str) -> str:
    """A name as compared: no accents, case-folded, hyphens as spaces, one space."""
    decomposed = unicodedata.normalize("NFKD", name)
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    letters = _APOSTROPHES.sub("", letters.casefold())
    return _SEPARATORS.sub(" ", letters).strip()


def same_given_names(a: str | None, b: str | None) -> bool:
    """Given names compare as written (normalised), in any order: "Jean
    Pierre" and "Pierre-Jean" are the same person's given names."""
    return bool(a and b) and sorted(normalised(a or "").split()) == sorted(
        normalised(b or "").split()
    )


def same_name(a: str | None, b: str | None) -> bool:
    """A family or company name: the same once normalised."""
    return bool(a and b) and normalised(a or "") == normalised(b or "")


def same_full_name(written: str | None, given: str | None, family: str | None) -> bool:
    """Whether ``written`` ("given names family name", as evidence names a
    person) is this person's name by the rules above: the one comparison of
    binding a proofing and of verify-log, so that a proofed spelling ("DUPONT",
    "Éloïse") is never taken for another person's, nor for a forgery."""
    words, family_words = normalised(written or "").split(), normalised(family or "").split()
    if not family_words or words[len(words) - len(family_words) :] != family_words:
        return False
    rest = words[: len(words) - len(family_words)]
    return sorted(rest) == sorted(normalised(given or "").split())


@dataclass(frozen=True)
class Claimed:
    """Who the party says it is (the names the proofs will carry)."""

    natural_person: bool
    given_name: str | None
    family_name: str | None
    company_name: str | None
    # The registration identifier the party was created with (2.5.4.97 form).
    registration_id: str | None = None


@dataclass(frozen=True)
class Verified:
    """What a certificate subject or eID assertion states about its holder."""

    given_name: str | None = None
    family_name: str | None = None
    birth_date: dt.date | None = None
    organisation_name: str | None = None
    organisation_identifier: str | None = None


def bind(claimed: Claimed, verified: Verified) -> dict[str, str]:
    """The attributes matched, for the identity record; IdentityMismatch when
    the verified identity names someone else or too little to tell."""
    if claimed.natural_person:
        pairs = {
            "family_name": (claimed.family_name, verified.family_name),
            "given_name": (claimed.given_name, verified.given_name),
        }
    else:
        pairs = {"organisation_name": (claimed.company_name, verified.organisation_name)}
    matched = {}
    for attribute, (theirs, proven) in pairs.items():
        if not proven or not normalised(proven):
            raise IdentityMismatch(f"the verified identity states no {attribute}")
        same = same_given_names if attribute == "given_name" else same_name
        if not same(theirs, proven):
            raise IdentityMismatch(f"the verified {attribute} is not the party's")
        matched[attribute] = proven
    if verified.birth_date is not None:
        matched["birth_date"] = verified.birth_date.isoformat()
    if verified.organisation_identifier:
        _same_organisation(claimed.registration_id, verified.organisation_identifier)
        matched["organisation_identifier"] = verified.organisation_identifier
    if not claimed.natural_person and verified.family_name:
        # A person's certificate naming the company: the person acting for it.
        matched["acting_person"] = f"{verified.given_name or ''} {verified.family_name}".strip()
    return matched


def _same_organisation(registered: str | None, certified: str) -> None:
    """A certificate's organizationIdentifier (2.5.4.97) must name the legal
    person the party was registered as (by SIREN in France: a certificate
    naming the company, a party naming one of its establishments); one that
    cannot be read is no proof of it. A party registered without an
    identifier is bound by its name alone, as before."""
    if registered is None:
        return
    try:
        proven = registration.parse(certified, "organisation_identifier")
    except InvalidArgument:
        raise IdentityMismatch(
            "the verified organisation_identifier is not a registration identifier"
        ) from None
    if not registration.parse(registered).same_legal_person(proven):
        raise IdentityMismatch("the verified organisation_identifier is not the party's")


def evidence_name(claimed: Claimed, matched: dict[str, str] | None) -> str:
    """The name a proof carries (R53-2 items 1 and 2): as the proofing verified
    it where there is one (the certificate or eID, not what a gateway typed),
    else as registered."""
    if matched:
        if claimed.natural_person and matched.get("family_name"):
            return f"{matched.get('given_name', '')} {matched['family_name']}".strip()
        if not claimed.natural_person and matched.get("organisation_name"):
            return matched["organisation_name"]
    if claimed.natural_person:
        return f"{claimed.given_name or ''} {claimed.family_name or ''}".strip()
    return claimed.company_name or ""
