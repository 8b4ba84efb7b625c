"""Personal data's retention schedule and the erasure rule (GDPR art. 5(1)(e)
storage limitation, art. 17 erasure and its exceptions).

A party's account data (names, e-mail, postal address, identity records
with their eID claims and certificate chains, credentials, sessions) is kept
while any of its letters may still be needed as proof, then erased. Erasure
yields to a legal obligation or legal claims (art. 17(3)(b), (e)): a letter
not yet final, a legal hold, or a letter that became final less than
``PROOF_FLOOR`` ago (R53-2, R53-3: the proofs available to the sender for
at least a year) refuses an erasure request with its reason.

The sealed evidence is not erased with the party: it is the proof the
retention exists for, and its seal covers its bytes."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
from dataclasses import dataclass

from lre.server.domain.errors import FailedPrecondition

# R53-2 and R53-3 CPCE: the proofs stay available for at least a year.
PROOF_FLOOR = dt.timedelta(days=365)


class PersonalDataKind(enum.Enum):
    """What the erasure worker counts (a metric's label: kinds, never parties)."""

    PARTY = "party"
    IDENTITY_RECORD = "identity_record"
    CREDENTIAL = "credential"
    SESSION = "session"
    OUTBOX = "outbox"  # one-time code messages
    WEBHOOK = "webhook"  # its subscriptions: address and key


class ErasureBasis(enum.Enum):
    """Why a party's data went: its schedule ran out, or it asked (art. 17)."""

    SCHEDULE = "schedule"
    REQUEST = "request"


@dataclass(frozen=True)
class RetentionSchedule:
    """How long each kind of personal data is kept (docs/operations.md, "Personal data")."""

    # After its last letter became final: the limitation period of civil
    # actions (5 years, art. 2224 Code civil) and a year to act on a claim.
    party_after_last_letter: dt.timedelta = dt.timedelta(days=6 * 365)
    # A party that never sent or received a letter: after its creation.
    party_without_letters: dt.timedelta = dt.timedelta(days=365)
    # Sessions, once expired or revoked: enough to investigate an incident.
    sessions: dt.timedelta = dt.timedelta(days=180)

    def __post_init__(self) -> None:
        if self.party_after_last_letter < PROOF_FLOOR:
            raise ValueError(
                "a party's data is kept at least a year after its last letter (R53-2, R53-3)"
            )
        if self.party_without_letters <= dt.timedelta(0) or self.sessions <= dt.timedelta(0):
            raise ValueError("retention periods must be positive")


@dataclass(frozen=True)
class PartyLetters:
    """What a party's letters say about erasing it."""

    open: int  # letters not final: in deposit, notification or their window
    held: int  # letters on legal hold
    last_final: dt.datetime | None  # when its most recent final letter became final


class ErasureRefused(FailedPrecondition):
    """The law keeps the data for now (art. 17(3)(b), (e)); ``reason`` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def erasure_refusal(letters: PartyLetters, now: dt.datetime) -> ErasureRefused | None:
    """Why the party's data may not be erased on request now, or None."""
    if letters.open:
        return ErasureRefused(
            "LETTER_IN_PROGRESS",
            f"{letters.open} of the party's letters are not final (deposit, notification "
            "or acceptance window): their proofs are still being made",
        )
    if letters.held:
        return ErasureRefused(
            "LEGAL_HOLD", f"{letters.held} of the party's letters are on legal hold"
        )
    if letters.last_final is not None and now < letters.last_final + PROOF_FLOOR:
        return ErasureRefused(
            "EVIDENCE_UNDER_RETENTION",
            "the proofs of the party's letters are kept at least a year after the letter "
            f"(R53-2, R53-3), until {(letters.last_final + PROOF_FLOOR).date().isoformat()}",
        )
    return None


def past_schedule(
    letters: PartyLetters,
    create_time: dt.datetime,
    now: dt.datetime,
    schedule: RetentionSchedule,
) -> bool:
    """Whether the party's data is past its schedule (and nothing keeps it)."""
    if letters.open or letters.held:
        return False
    if letters.last_final is None:
        return now >= create_time + schedule.party_without_letters
    return now >= letters.last_final + schedule.party_after_last_letter


def salted_digest(salt: bytes, canonical: bytes) -> str:
    """A commitment to personal data that outlives it: HMAC-SHA-256 keyed by
    a random salt kept beside the data. While both exist the digest checks
    the data; once both are erased nobody (the provider included) can test
    a guess against it, unlike a plain digest of low-entropy data."""
    return hmac.new(salt, b"lre-salted:" + canonical, hashlib.sha256).hexdigest()
