"""IdentityService's records as protobuf messages."""

from __future__ import annotations

from lre.server.api.convert import timestamp
from lre.server.domain.corrections import NameCorrection
from lre.server.domain.identity import (
    AssuranceLevel,
    Consent,
    IdentityRecord,
    Party,
    ProfessionalBasis,
    ProofingMethod,
)
from lre.server.domain.letters import PartyKind
from lre.v1 import identity_pb2

KINDS = {
    identity_pb2.PARTY_KIND_NATURAL_PERSON: PartyKind.NATURAL_PERSON,
    identity_pb2.PARTY_KIND_LEGAL_PERSON: PartyKind.LEGAL_PERSON,
}
LEVELS = {
    AssuranceLevel.LOW: identity_pb2.ASSURANCE_LEVEL_LOW,
    AssuranceLevel.SUBSTANTIAL: identity_pb2.ASSURANCE_LEVEL_SUBSTANTIAL,
    AssuranceLevel.HIGH: identity_pb2.ASSURANCE_LEVEL_HIGH,
}
BASES = {
    ProfessionalBasis.OPERATOR: identity_pb2.PROFESSIONAL_BASIS_OPERATOR,
    ProfessionalBasis.PARTY: identity_pb2.PROFESSIONAL_BASIS_PARTY,
}
METHODS = {
    ProofingMethod.CERTIFICATE: identity_pb2.PROOFING_METHOD_CERTIFICATE,
    ProofingMethod.EID_ASSERTION: identity_pb2.PROOFING_METHOD_EID_ASSERTION,
    ProofingMethod.DOCUMENT_CHECK: identity_pb2.PROOFING_METHOD_DOCUMENT_CHECK,
}


def party_message(party: Party, level: AssuranceLevel | None) -> identity_pb2.Party:
    address = party.postal_address or {}
    return identity_pb2.Party(
        name=f"parties/{party.id}",
        kind=identity_pb2.PARTY_KIND_NATURAL_PERSON
        if party.kind is PartyKind.NATURAL_PERSON
        else identity_pb2.PARTY_KIND_LEGAL_PERSON,
        professional=party.professional,
        given_name=party.given_name or "",
        family_name=party.family_name or "",
        company_name=party.company_name or "",
        email=party.email,
        postal_address=address or None,
        assurance_level=LEVELS[level] if level else identity_pb2.ASSURANCE_LEVEL_UNSPECIFIED,
        create_time=timestamp(party.create_time),
        registration_id=party.registration_id or "",
        professional_claimed=party.professional_claimed,
        professional_basis=BASES[party.professional_basis]
        if party.professional_basis
        else identity_pb2.PROFESSIONAL_BASIS_UNSPECIFIED,
        erase_time=timestamp(party.erase_time),
    )


def record_message(record: IdentityRecord) -> identity_pb2.IdentityRecord:
    return identity_pb2.IdentityRecord(
        name=f"parties/{record.party_id}/identityRecords/{record.id}",
        method=METHODS[record.method],
        level=LEVELS[record.level],
        proof_time=timestamp(record.proof_time),
        expire_time=timestamp(record.expire_time),
        evidence_summary=record.evidence_summary,
    )


def consent_message(consent: Consent) -> identity_pb2.Consent:
    return identity_pb2.Consent(
        name=f"parties/{consent.recipient_id}/consents/{consent.id}",
        recipient=f"parties/{consent.recipient_id}",
        sender=f"parties/{consent.sender_id}",
        grant_time=timestamp(consent.grant_time),
        method=consent.method,
        withdraw_time=timestamp(consent.withdraw_time),
        actor=consent.actor or "",
        consent_form_sha256=consent.form_sha256 or "",
    )


def correction_message(correction: NameCorrection) -> identity_pb2.PartyCorrection:
    return identity_pb2.PartyCorrection(
        name=correction.name,
        correct_time=timestamp(correction.correct_time),
        document=correction.document,
        seal=correction.seal,
    )
