"""Who may do what with a letter (eIDAS art. 24(1) and 44(1); CPCE R53-1).

Custody asks these questions and nothing else: how a caller was identified
and authenticated is IdentityService's business, what it takes to deposit or
to receive is decided here.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from lre.server.domain.errors import (
    AuthenticationRequired,
    DepositRefused,
    InvalidArgument,
    PermissionDenied,
    SessionRequired,
)
from lre.server.domain.letters import PartyKind

# A recipient deciding on a letter must have authenticated recently.
RECIPIENT_SESSION_MAX_AGE = dt.timedelta(minutes=15)


class AssuranceLevel(enum.IntEnum):
    """Regulation (EU) 2015/1502."""

    LOW = 1
    SUBSTANTIAL = 2
    HIGH = 3


# eIDAS art. 24(1a) as amended: a sender is identified by physical presence,
# an eID at level high, a qualified certificate or an equivalent method.
SENDER_MIN_LEVEL = AssuranceLevel.HIGH


class ProofingMethod(enum.Enum):
    CERTIFICATE = "certificate"
    EID_ASSERTION = "eid_assertion"
    DOCUMENT_CHECK = "document_check"


# The methods whose records name what the verified identity matched
# (proofing.bind), which evidence prints; an operator's document check
# stands by the names as the party stated them.
NAMING_METHODS = (ProofingMethod.CERTIFICATE, ProofingMethod.EID_ASSERTION)


class ProfessionalBasis(enum.Enum):
    """Who made a party a professional recipient (L100: no consent needed)."""

    # An operator, on documents it recorded (an extract of the trade register,
    # the articles of association, a signed statement).
    OPERATOR = "operator"
    # The party itself, with its own strong session: its own statement binds it.
    PARTY = "party"


class FactorCategory(enum.Enum):
    KNOWLEDGE = "knowledge"
    POSSESSION = "possession"
    INHERENCE = "inherence"


@dataclass(frozen=True)
class Party:
    """A sender or recipient as the service knows it."""

    id: uuid.UUID
    kind: PartyKind
    professional: bool
    email: str
    given_name: str | None
    family_name: str | None
    company_name: str | None
    postal_address: dict[str, Any] | None
    create_time: dt.datetime
    # A legal person's identifier in the organizationIdentifier (2.5.4.97)
    # form ("NTRFR-552100554"; domain.registration).
    registration_id: str | None = None
    # What the creating gateway said of the party's status: kept for the
    # desk, never in force by itself (``professional_status``).
    professional_claimed: bool = False
    # On what ``professional`` rests, when it is True.
    professional_basis: ProfessionalBasis | None = None
    # When the party's personal data was erased (domain.retention): its
    # names, e-mail and address are gone, its letters' sealed evidence stays.
    erase_time: dt.datetime | None = None


@dataclass(frozen=True)
class IdentityRecord:
    """One proofing of a party: how, at which level, until when, on what evidence."""

    id: uuid.UUID
    party_id: uuid.UUID
    method: ProofingMethod
    level: AssuranceLevel
    proof_time: dt.datetime
    expire_time: dt.datetime | None
    evidence_summary: str
    details: dict[str, Any]
    # The salt of the record's lre-log/2 digest: erased with the details.
    digest_salt: bytes | None = None
    # When the record's personal data was erased (domain.retention).
    erase_time: dt.datetime | None = None


@dataclass(frozen=True)
class ProofingChallenge:
    id: uuid.UUID
    party_id: uuid.UUID
    challenge: bytes
    expire_time: dt.datetime
    use_time: dt.datetime | None


@dataclass(frozen=True)
class Consent:
    """A recipient's consent to receive registered letters electronically from a sender (L100)."""

    id: uuid.UUID
    recipient_id: uuid.UUID
    sender_id: uuid.UUID
    method: str
    grant_time: dt.datetime
    withdraw_time: dt.datetime | None
    # Who recorded it (a caller's certificate name, or "parties/{id}" for the
    # party's own session) and the SHA-256 (hex) of the signed consent form;
    # None on consents recorded before they were kept.
    actor: str | None = None
    form_sha256: str | None = None


@dataclass(frozen=True)
class Credential:
    """A party's means of authentication and their counters (secrets hashed or
    encrypted); a party without any has the defaults."""

    party_id: uuid.UUID
    password_hash: str | None = None
    totp_secret: bytes | None = None  # encrypted at rest
    totp_last_step: int | None = None
    failed_attempts: int = 0
    locked_until: dt.datetime | None = None
    email_code_id: uuid.UUID | None = None
    email_code_hmac: bytes | None = None
    email_code_sent_time: dt.datetime | None = None
    email_code_expire_time: dt.datetime | None = None
    enrolment_code_hmac: bytes | None = None
    enrolment_code_expire_time: dt.datetime | None = None

    def locked(self, now: dt.datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


# Ceiling keys never look like a source's key (32 hex digits): old rows keep
# their meaning, and neither kind of count can land on the other's row.
CALLER_PREFIX = "caller:"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Source:
    """Who attempts an authentication, as lockouts count it. ``key``: a
    digest of the caller (its certificate names, or the peer's address in
    plaintext) and the end user its portal forwards, so that one portal user
    cannot lock another out. ``caller``: a digest of the caller alone, the
    ceiling under which the failures of all its end users against one party
    are counted together (the end user is the caller's word, and a caller
    that changed it at each attempt would otherwise guess without end).
    Digests only: no certificate name or address is stored in clear."""

    key: str
    caller: str

    @classmethod
    def of(cls, caller: str, end_user: str = "") -> Source:
        return cls(_digest(f"{caller}\n{end_user}"), CALLER_PREFIX + _digest(caller))


# Who tries when no one is named (a service called outside an RPC).
NO_SOURCE = Source.of("")


@dataclass(frozen=True)
class Throttle:
    """The authentication failures of one source (``Source.key``), or of all
    one caller's (its ceiling, ``Source.caller``), against one party: a
    lockout stops that source or that caller, never the party."""

    party_id: uuid.UUID
    source: str
    failed_attempts: int = 0
    # Lockouts this source earned in a row: each is twice as long as the last.
    lockouts: int = 0
    locked_until: dt.datetime | None = None
    # An unlock code e-mailed to the party at this source's request (kept
    # as an HMAC bound to its id): the party, from its mailbox, lifts this
    # source's lockout and no other.
    unlock_code_hmac: bytes | None = None
    unlock_code_sent_time: dt.datetime | None = None
    unlock_code_expire_time: dt.datetime | None = None

    def locked(self, now: dt.datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


@dataclass(frozen=True)
class Session:
    party_id: str
    # The level the party was proofed at (identity record still valid).
    level: AssuranceLevel
    factors: frozenset[FactorCategory]
    # A one-time element (TOTP, e-mailed code) was part of this authentication.
    one_time_element: bool
    authenticated_at: dt.datetime
    expires_at: dt.datetime
    # The party's identity proofing was still valid when the session opened.
    # Without it, the provider's factors still prove who reads its own
    # letters and proofs (R53-2, R53-3: kept for the sender a year at least),
    # but sending and deciding need a proofing again (docs/security.md).
    proofing_current: bool = True

    @property
    def strong(self) -> bool:
        """Two factors of different categories and a dynamic element (R53-1)."""
        return len(self.factors) >= 2 and self.one_time_element


def _require_strong(session: Session | None, now: dt.datetime, role: str) -> Session:
    if session is None or now >= session.expires_at:
        raise SessionRequired(f"{role} session missing or expired")
    if session.level < AssuranceLevel.SUBSTANTIAL:
        raise AuthenticationRequired(f"{role} identity proofed below level substantial")
    if not session.strong:
        raise AuthenticationRequired(f"{role} session lacks two factors and a one-time code")
    if not session.proofing_current:
        raise AuthenticationRequired(
            f"{role} identity proofing has expired: prove it again to send or decide"
        )
    return session


def require_own(session: Session | None, party_id: str) -> Session:
    """A person's credentials, and what the service keeps about them, are
    theirs: only their own session acts on them (never another party's
    gateway). Staff roles, where they may, are checked by the caller."""
    if session is None:
        raise SessionRequired("the party's own session is required")
    if session.party_id != party_id:
        raise PermissionDenied("a party's session acts only on that party")
    return session


def require_sender(
    session: Session | None, now: dt.datetime, min_level: AssuranceLevel = SENDER_MIN_LEVEL
) -> Session:
    """Deposit: a sender identified face to face or equivalently (eIDAS 24(1a)),
    i.e. proofed at ``min_level`` (high unless configured), with a strong session."""
    checked = _require_strong(session, now, "sender")
    if checked.level < min_level:
        raise AuthenticationRequired(
            f"sender identity proofed below level {min_level.name.lower()}"
        )
    return checked


def require_recipient(session: Session | None, now: dt.datetime) -> Session:
    """Accept, refuse, download: a recipient proofed at substantial or higher
    with a strong session authenticated in the last minutes."""
    checked = _require_strong(session, now, "recipient")
    if now - checked.authenticated_at > RECIPIENT_SESSION_MAX_AGE:
        raise AuthenticationRequired("recipient must authenticate again to decide")
    return checked


def require_recipient_or_operator(
    session: Session | None, recipient_id: str, operator: bool
) -> None:
    """Consent (L100) comes from the recipient, never from the sender's side:
    given with the recipient's own session, or recorded by an operator from
    evidence the recipient gave (a signed form)."""
    if not operator:
        require_own(session, recipient_id)


def check_professional_declaration(natural_person: bool, professional: bool) -> None:
    """What a creating gateway may say of a party's status. A natural person is
    not declared professional by a gateway (a sender would declare every
    consumer professional): it is refused. A legal person's ``professional``
    is recorded as the gateway's claim and is not in force: a family SCI or a
    tenants' association has a SIREN too and may receive as a consumer would
    (``professional_status`` says who may decide)."""
    if natural_person and professional:
        raise InvalidArgument(
            "party.professional",
            "a natural person is not declared professional by a gateway; "
            "the recipient gives consent instead",
        )


def professional_status(
    session: Session | None, party_id: str, operator: bool
) -> ProfessionalBasis:
    """Who may make a party a professional recipient, which spares the sender
    its consent (L100): an operator acting on documents it records, or the
    party itself with its own strong session (its statement binds it). Never
    a gateway on its word: a false exemption makes the letter void."""
    if operator:
        return ProfessionalBasis.OPERATOR
    checked = require_own(session, party_id)
    if not checked.strong or not checked.proofing_current:
        raise AuthenticationRequired(
            "the party's statement needs a strong session and a current proofing"
        )
    return ProfessionalBasis.PARTY


@dataclass(frozen=True)
class Recipient:
    party_id: str
    professional: bool


CONSENT_MISSING = "consent_missing"
CONSENT_MISSING_REASON = (
    "the recipient is not a professional and has not consented to electronic registered letters"
)


def require_consent(recipient: Recipient, consent_given: bool) -> None:
    """CPCE L100: a non-professional recipient must have consented to receive
    registered letters electronically from this sender; a letter sent without
    it is void, so the deposit (or this recipient of a mailing) is refused."""
    if not recipient.professional and not consent_given:
        raise DepositRefused(CONSENT_MISSING, CONSENT_MISSING_REASON, field="recipient")
