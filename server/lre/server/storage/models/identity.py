"""The identity tables: parties, their proofing, credentials, sessions and consents."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from lre.server.domain.identity import AssuranceLevel, ProfessionalBasis, ProofingMethod
from lre.server.domain.letters import PartyKind
from lre.server.storage.models.base import Base, db_enum


class Party(Base):
    __tablename__ = "parties"
    __table_args__ = (UniqueConstraint("request_scope", "request_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    kind: Mapped[PartyKind] = mapped_column(db_enum(PartyKind, "party_kind"))
    professional: Mapped[bool] = mapped_column(Boolean)
    given_name: Mapped[str | None] = mapped_column(String(200))
    family_name: Mapped[str | None] = mapped_column(String(200))
    company_name: Mapped[str | None] = mapped_column(String(300))
    email: Mapped[str] = mapped_column(String(320), index=True)
    postal_address: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    create_time: Mapped[dt.datetime]
    # A legal person's identifier in the organizationIdentifier form (NTRFR-...).
    registration_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # The creating gateway's word on the status (never in force by itself),
    # and who put ``professional`` in force: an operator or the party.
    professional_claimed: Mapped[bool] = mapped_column(Boolean, server_default=false())
    professional_basis: Mapped[ProfessionalBasis | None] = mapped_column(
        db_enum(ProfessionalBasis, "professional_basis")
    )
    # Idempotency key of the creating request, scoped to its caller: a retry
    # returns this party; the same key with other content is refused.
    request_id: Mapped[str | None] = mapped_column(String(128))
    request_scope: Mapped[str] = mapped_column(String(300), server_default="")
    request_hash: Mapped[str | None] = mapped_column(String(64))
    # When its personal data was erased (domain.retention).
    erase_time: Mapped[dt.datetime | None]


class PartyCorrection(Base):
    """A correction of a party's names: before and after, who, on what basis,
    and the sealed document that proves it (domain.corrections)."""

    __tablename__ = "party_corrections"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), index=True)
    correct_time: Mapped[dt.datetime]
    before: Mapped[dict[str, Any]] = mapped_column(JSON)
    after: Mapped[dict[str, Any]] = mapped_column(JSON)
    basis: Mapped[str] = mapped_column(String(500))
    operator_id: Mapped[str] = mapped_column(String(100))
    operator_certificate: Mapped[str] = mapped_column(String(300))
    document: Mapped[bytes] = mapped_column(LargeBinary)
    seal: Mapped[bytes] = mapped_column(LargeBinary)


class IdentityRecord(Base):
    """How, when and at which level a party's identity was proofed."""

    __tablename__ = "identity_records"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), index=True)
    method: Mapped[ProofingMethod] = mapped_column(db_enum(ProofingMethod, "proofing_method"))
    level: Mapped[AssuranceLevel] = mapped_column(db_enum(AssuranceLevel, "assurance_level"))
    proof_time: Mapped[dt.datetime]
    expire_time: Mapped[dt.datetime | None]
    evidence_summary: Mapped[str] = mapped_column(String(500))
    # Method-specific facts; secrets (document numbers) only as keyed hashes.
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The salt of the record's lre-log/2 digest; erased with the details.
    digest_salt: Mapped[bytes | None] = mapped_column(LargeBinary(16))
    erase_time: Mapped[dt.datetime | None]


class Credential(Base):
    """Means of authentication issued after proofing."""

    __tablename__ = "credentials"

    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), primary_key=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # Encrypted (AES-256-GCM) under the server's secrets key: TOTP needs the secret itself.
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The last TOTP time step accepted: a code is never accepted twice.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None]
    # The one e-mailed code outstanding, as an HMAC under the secrets key; a
    # new code replaces it, a session consumes it.
    email_code_id: Mapped[uuid.UUID | None]
    email_code_hmac: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    email_code_sent_time: Mapped[dt.datetime | None]
    email_code_expire_time: Mapped[dt.datetime | None]
    # The outstanding enrolment code (sent after proofing), as an HMAC.
    enrolment_code_hmac: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    enrolment_code_expire_time: Mapped[dt.datetime | None]


class AuthThrottle(Base):
    """Authentication failures of one source against one party: the source is
    a digest of the caller certificate and the end user's address its portal
    forwards; a lockout stops that source only. Rows keyed ``caller:`` plus a
    digest of the certificate alone count all that caller's end users
    together (its ceiling); ``notice:`` keys count wrong notice codes."""

    __tablename__ = "auth_throttles"

    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), primary_key=True)
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    failed_attempts: Mapped[int] = mapped_column(Integer)
    # How many lockouts this source earned in a row: each is twice as long.
    lockouts: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[dt.datetime | None]
    # The unlock code e-mailed to the party for this source, as an HMAC.
    unlock_code_hmac: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    unlock_code_sent_time: Mapped[dt.datetime | None]
    unlock_code_expire_time: Mapped[dt.datetime | None]
    update_time: Mapped[dt.datetime]


class AuthSession(Base):
    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), index=True)
    # SHA-256 of the bearer token; the token itself is shown once.
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    # SHA-256 of the names of the caller certificate that opened it: the
    # token authenticates through that caller only, so a token leaked from
    # one portal opens nothing through another.
    caller_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    level: Mapped[AssuranceLevel] = mapped_column(db_enum(AssuranceLevel, "assurance_level"))
    factors: Mapped[list[str]] = mapped_column(JSON)
    one_time_element: Mapped[bool] = mapped_column(Boolean)
    authenticated_at: Mapped[dt.datetime]
    expire_time: Mapped[dt.datetime]
    revoke_time: Mapped[dt.datetime | None]
    # Whether the party's identity proofing was still valid when the session
    # opened: without it, the session reads the party's own letters and
    # proofs, and neither sends nor decides (domain.identity).
    proofing_current: Mapped[bool] = mapped_column(Boolean, server_default=true())


class Consent(Base):
    """A non-professional recipient's consent to electronic registered letters
    from one sender (CPCE L100)."""

    __tablename__ = "consents"
    __table_args__ = (
        Index("ix_consents_recipient_sender", "recipient_id", "sender_id"),
        UniqueConstraint("request_scope", "request_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    recipient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    sender_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    method: Mapped[str] = mapped_column(String(64))
    # Who recorded it (the caller's certificate name, or the party's own
    # session), and the SHA-256 of the consent form it signed.
    actor: Mapped[str | None] = mapped_column(String(300))
    form_sha256: Mapped[str | None] = mapped_column(String(64))
    grant_time: Mapped[dt.datetime]
    withdraw_time: Mapped[dt.datetime | None]
    request_id: Mapped[str | None] = mapped_column(String(128))
    request_scope: Mapped[str] = mapped_column(String(300), server_default="")
    request_hash: Mapped[str | None] = mapped_column(String(64))


class ProofingChallenge(Base):
    """A random challenge the party signs with its certificate's key."""

    __tablename__ = "proofing_challenges"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), index=True)
    challenge: Mapped[bytes] = mapped_column(LargeBinary(32))
    expire_time: Mapped[dt.datetime]
    use_time: Mapped[dt.datetime | None]


class UsedNonce(Base):
    """eID assertion nonces already accepted: an assertion proves once."""

    __tablename__ = "used_nonces"

    issuer: Mapped[str] = mapped_column(String(255), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(255), primary_key=True)
    use_time: Mapped[dt.datetime]
