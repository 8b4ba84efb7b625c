"""Parties: creating one (idempotently), reading one, its current level,
and the security journal's entries about one."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from lre.server.clock import utcnow
from lre.server.domain import journal, registration
from lre.server.domain.addresses import email_address
from lre.server.domain.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RequestConflict,
    WriteConflict,
)
from lre.server.domain.identity import (
    AssuranceLevel,
    Party,
    ProfessionalBasis,
    check_professional_declaration,
)
from lre.server.domain.letters import PartyKind
from lre.server.domain.log import LogKind, email_hmac
from lre.server.domain.personal_names import name_problem
from lre.server.services.identity.settings import Clock
from lre.server.storage.store import Store, Stores

T = TypeVar("T")


def fingerprint(*content: object) -> str:
    """What a request asked for, to tell a retry from another request under the same key."""
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def idempotent(
    stores: Stores,
    request_hash: str,
    find: Callable[[Store], tuple[T, str | None] | None],
    create: Callable[[Store], T],
) -> T:
    """What a caller's request created: the existing result on a retry, a new
    one otherwise; the same key with other content is refused. When two
    identical requests race, the loser's unique violation returns the winner's
    result."""

    def existing(found: tuple[T, str | None] | None) -> T | None:
        if found is None:
            return None
        result, earlier = found
        if earlier is not None and earlier != request_hash:
            raise RequestConflict("request_id", "was already used for a different request")
        return result

    try:
        with stores.begin() as store:
            before = existing(find(store))
            return before if before is not None else create(store)
    except WriteConflict:
        with stores.read() as store:
            winner = existing(find(store))
            if winner is None:
                raise
            return winner


def check_request_id(request_id: str) -> None:
    if not request_id or len(request_id) > 128:
        raise InvalidArgument("request_id", "required, at most 128 characters")


def proofed_level(store: Store, party_id: uuid.UUID, now: dt.datetime) -> AssuranceLevel:
    """The highest level the party was proofed at, its proofing current or
    not: means of authentication come only after a first identification
    (R53-1), and stay the party's when that proofing expires (it keeps
    reading its proofs; sessions say whether it may send or decide)."""
    if not store.parties.exists(party_id):
        raise NotFound("no such party")
    level = store.proofing.highest_ever(party_id)
    if level is None:
        raise FailedPrecondition("the party's identity has not been proofed")
    return level


def journaled(
    store: Store,
    kind: LogKind,
    party_id: uuid.UUID,
    now: dt.datetime,
    **facts: str | int | dt.datetime | None,
) -> None:
    """A security journal entry about the party, in the caller's transaction:
    it commits with what it records, or not at all."""
    store.log.append_journal(journal.entry(kind, f"parties/{party_id}", now, **facts), now)


MAX_ADDRESS_LINES = 6


@dataclass(frozen=True)
class NewParty:
    kind: PartyKind
    professional: bool
    email: str
    given_name: str = ""
    family_name: str = ""
    company_name: str = ""
    postal_address: dict[str, Any] | None = None
    registration_id: str = ""


@dataclass(frozen=True)
class ProfessionalDecision:
    """Who puts a party's professional status in force or ends it, on what."""

    professional: bool
    basis: ProfessionalBasis
    # The documents an operator decided on (no personal data: journaled in clear).
    evidence: str = ""
    operator_id: str = ""
    operator_certificate: str = ""


class PartyService:
    def __init__(self, stores: Stores, secrets_key: bytes, clock: Clock = utcnow) -> None:
        self._stores = stores
        self._key = secrets_key
        self._clock = clock

    def create(self, scope: str, request_id: str, new: NewParty) -> Party:
        """``scope`` is the caller the idempotency key belongs to."""
        check_request_id(request_id)
        if new.kind is None:
            raise InvalidArgument("party.kind", "must be NATURAL_PERSON or LEGAL_PERSON")
        email_address(new.email, "party.email")
        if new.kind is PartyKind.NATURAL_PERSON and not (new.given_name and new.family_name):
            raise InvalidArgument(
                "party.family_name", "a natural person needs given and family names"
            )
        if new.kind is PartyKind.LEGAL_PERSON and not new.company_name:
            raise InvalidArgument("party.company_name", "a legal person needs a company name")
        for field in ("given_name", "family_name", "company_name"):
            value = getattr(new, field)
            if value and (problem := name_problem(value)) is not None:
                raise InvalidArgument(f"party.{field}", problem)
        lines = (new.postal_address or {}).get("lines") or []
        if len(lines) > MAX_ADDRESS_LINES:
            # A postal address has six lines at most (NF Z10-011, UPU S42).
            raise InvalidArgument(
                "party.postal_address.lines", f"at most {MAX_ADDRESS_LINES} lines"
            )
        check_professional_declaration(new.kind is PartyKind.NATURAL_PERSON, new.professional)
        registered = registration.parse(new.registration_id).value if new.registration_id else None

        def create(store: Store) -> Party:
            party = Party(
                id=uuid.uuid4(),
                kind=new.kind,
                # A gateway's word is a claim: not in force (set_professional).
                professional=False,
                email=new.email,
                given_name=new.given_name or None,
                family_name=new.family_name or None,
                company_name=new.company_name or None,
                postal_address=new.postal_address,
                create_time=self._clock(),
                registration_id=registered,
                professional_claimed=new.professional,
            )
            store.parties.add(party, scope, request_id, request_hash)
            return party

        request_hash = fingerprint(dataclasses.asdict(new))
        return idempotent(
            self._stores,
            request_hash,
            lambda store: store.parties.by_request(scope, request_id),
            create,
        )

    def set_professional(self, party_id: uuid.UUID, decision: ProfessionalDecision) -> Party:
        """Puts the party's professional status in force (no consent needed,
        L100) or ends it, journaled with who decided and on what; the same
        status again changes nothing and journals nothing."""
        if decision.basis is ProfessionalBasis.OPERATOR:
            if not decision.evidence or len(decision.evidence) > 200:
                raise InvalidArgument(
                    "basis", "an operator names the documents it decided on (at most 200)"
                )
            if not decision.operator_id or len(decision.operator_id) > 100:
                raise InvalidArgument("operator_id", "required, at most 100 characters")
        elif len(decision.evidence) > 200:
            raise InvalidArgument("basis", "at most 200 characters")
        now = self._clock()
        with self._stores.begin() as store:
            party = store.parties.lock(party_id)
            if party is None:
                raise NotFound("no such party")
            if party.erase_time is not None:
                # Erased is erased (GDPR art. 17): nothing new is recorded of it.
                raise FailedPrecondition("the party's personal data is erased")
            if party.professional == decision.professional and (
                party.professional_basis is decision.basis or not decision.professional
            ):
                return party
            changed = dataclasses.replace(
                party,
                professional=decision.professional,
                professional_basis=decision.basis if decision.professional else None,
            )
            store.parties.set_professional(changed)
            journaled(
                store,
                LogKind.PROFESSIONAL_DECLARED
                if decision.professional
                else LogKind.PROFESSIONAL_ENDED,
                party.id,
                now,
                emailHmac=email_hmac(self._key, party.email),
                partyKind=party.kind.value,
                basis=decision.basis.value,
                evidence=decision.evidence or None,
                operatorId=decision.operator_id or None,
                operatorCertificate=decision.operator_certificate or None,
            )
            return changed

    def get(self, party_id: uuid.UUID) -> Party:
        with self._stores.read() as store:
            party = store.parties.get(party_id)
        if party is None:
            raise NotFound("no such party")
        return party

    def level(self, party_id: uuid.UUID) -> AssuranceLevel | None:
        """The highest level among the party's identity records still valid."""
        with self._stores.read() as store:
            return store.proofing.level(party_id, self._clock())
