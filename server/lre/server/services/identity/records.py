"""The identity record each proofing method leaves: its level, how long it
holds, and what proves it (the evidence as presented, secrets only as keyed
hashes). Built from what was verified; no database."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from lre.server.adapters.trusted_lists import Qualification
from lre.server.domain.identity import AssuranceLevel, IdentityRecord, ProofingMethod
from lre.server.services.identity.settings import EidBroker, IdentityPolicy

# The claims of an ID token kept as the evidence of an eID proofing.
EVIDENCE_CLAIMS = (
    "iss",
    "sub",
    "aud",
    "acr",
    "iat",
    "auth_time",
    "given_name",
    "family_name",
    "birthdate",
)


def document_record(
    secrets_key: bytes,
    party_id: uuid.UUID,
    document: tuple[str, str, dt.datetime],
    operator: tuple[str, str, bool],
    now: dt.datetime,
    policy: IdentityPolicy,
) -> IdentityRecord:
    """``document``: its type, number and expiry; ``operator``: as typed, as
    its client certificate says, and whether the person stood before it
    (level high) or not (substantial). The number is kept as a keyed hash.
    The proofing lasts until the document expires, at most the policy's
    proofing validity, as for the other methods."""
    document_type, document_number, document_expires = document
    operator_id, operator_certificate, person_present = operator
    number_hash = hmac.new(
        secrets_key,
        f"{document_type}:{document_number.strip().upper()}".encode(),
        hashlib.sha256,
    ).hexdigest()
    return IdentityRecord(
        id=uuid.uuid4(),
        party_id=party_id,
        digest_salt=secrets.token_bytes(16),
        method=ProofingMethod.DOCUMENT_CHECK,
        level=AssuranceLevel.HIGH if person_present else AssuranceLevel.SUBSTANTIAL,
        proof_time=now,
        expire_time=min(document_expires, now + policy.proof_validity),
        evidence_summary=f"{document_type} checked by operator {operator_id}"
        + (", person present" if person_present else ", remotely"),
        details={
            "document_type": document_type,
            "document_number_hmac": number_hash,
            "document_expire_time": document_expires.isoformat(),
            "operator": operator_id,
            "operator_certificate": operator_certificate,
            "person_present": person_present,
        },
    )


def certificate_record(
    party_id: uuid.UUID,
    leaf: x509.Certificate,
    chain_der: list[bytes],
    revocation_der: list[bytes],
    matched: dict[str, str],
    now: dt.datetime,
    policy: IdentityPolicy,
    qualification: Qualification | None = None,
) -> IdentityRecord:
    """Level high, until the certificate expires or the proof's validity ends;
    whether it is qualified, and by which trusted list, where lists are configured."""
    summary = (
        f"certificate {leaf.subject.rfc4514_string()} issued by {leaf.issuer.rfc4514_string()}"
    )
    listed = qualification.trusted_list if qualification is not None else None
    if qualification is not None and qualification.qualified and listed is not None:
        summary = f"qualified {summary} ({listed.label()}: {qualification.service})"
    return IdentityRecord(
        id=uuid.uuid4(),
        party_id=party_id,
        digest_salt=secrets.token_bytes(16),
        method=ProofingMethod.CERTIFICATE,
        level=AssuranceLevel.HIGH,
        proof_time=now,
        expire_time=min(leaf.not_valid_after_utc, now + policy.proof_validity),
        evidence_summary=summary[:500],
        details={
            "subject": leaf.subject.rfc4514_string(),
            "issuer": leaf.issuer.rfc4514_string(),
            "serial": format(leaf.serial_number, "x"),
            "sha256": leaf.fingerprint(hashes.SHA256()).hex(),
            "matched": matched,
            # The evidence as presented: the chain and the revocation data.
            "certificate_chain": [base64.b64encode(der).decode() for der in chain_der],
            "revocation_data": [base64.b64encode(der).decode() for der in revocation_der],
            **({"qualification": qualification.details()} if qualification is not None else {}),
        },
    )


def eid_record(
    party_id: uuid.UUID,
    broker: EidBroker,
    claims: dict[str, Any],
    level: AssuranceLevel,
    matched: dict[str, str],
    now: dt.datetime,
    policy: IdentityPolicy,
) -> IdentityRecord:
    """The level the token's `acr` maps to, for the proof's validity."""
    return IdentityRecord(
        id=uuid.uuid4(),
        party_id=party_id,
        digest_salt=secrets.token_bytes(16),
        method=ProofingMethod.EID_ASSERTION,
        level=level,
        proof_time=now,
        expire_time=now + policy.proof_validity,
        evidence_summary=f"eID {broker.issuer} acr {claims.get('acr')}",
        details={
            "issuer": broker.issuer,
            "sub": str(claims["sub"]),
            "acr": str(claims.get("acr")),
            "matched": matched,
            # The evidence: the claims the broker signed.
            "claims": {k: claims[k] for k in EVIDENCE_CLAIMS if k in claims},
        },
    )


def qualification_facts(qualification: Qualification | None) -> dict[str, str | bool | None]:
    """What the journal says of it: qualified or not, and which list's service said so."""
    if qualification is None:
        return {}
    listed = qualification.trusted_list if qualification.qualified else None
    return {
        "certificateQualified": qualification.qualified,
        "trustedList": listed.label() if listed else None,
        "trustedListSha256": listed.sha256 if listed else None,
        "qualifiedService": qualification.service if listed else None,
    }
