"""Proofing a party's identity: a document checked by an operator
(substantial), a certificate that signs our challenge (high), an eID
assertion (the level its `acr` maps to)."""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import os
import uuid
from collections.abc import Callable

from cryptography import x509

from lre.server.adapters.trusted_lists import Qualification
from lre.server.clock import utcnow
from lre.server.domain import journal
from lre.server.domain.errors import (
    AuthenticationFailed,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    WriteConflict,
)
from lre.server.domain.identity import (
    IdentityRecord,
    ProofingChallenge,
    ProofingMethod,
)
from lre.server.domain.letters import PartyKind
from lre.server.domain.log import LogKind
from lre.server.domain.proofing import (
    Claimed,
    IdentityMismatch,
    NotQualified,
    Verified,
    bind,
    check_document,
)
from lre.server.services.identity.credentials import UNKNOWN_PARTY
from lre.server.services.identity.parties import journaled
from lre.server.services.identity.records import (
    certificate_record,
    document_record,
    eid_record,
    qualification_facts,
)
from lre.server.services.identity.settings import Clock, IdentityPolicy
from lre.server.services.identity.verification import (
    Refused,
    certificate_identity,
    certificate_refusal,
    eid_claims,
    eid_identity,
    qualification_refusal,
)
from lre.server.storage.store import Store, Stores

logger = logging.getLogger("lre.identity")

CHALLENGE_TTL = dt.timedelta(minutes=5)


def _require_party(store: Store, party_id: uuid.UUID) -> None:
    # An erased party is proofed no more: its data is gone, on request or schedule.
    if not store.parties.exists(party_id, erased=False):
        raise NotFound("no such party")


def _claimed(store: Store, party_id: uuid.UUID) -> Claimed:
    party = store.parties.get(party_id)
    if party is None:
        raise NotFound("no such party")
    return Claimed(
        natural_person=party.kind is PartyKind.NATURAL_PERSON,
        given_name=party.given_name,
        family_name=party.family_name,
        company_name=party.company_name,
        registration_id=party.registration_id,
    )


def _bound(store: Store, party_id: uuid.UUID, verified: Verified) -> dict[str, str]:
    """The party's attributes the verified identity matched (IdentityMismatch if it does not)."""
    return bind(_claimed(store, party_id), verified)


# Told of each new identity record, in its transaction (the credentials
# service e-mails the party an enrolment code).
Proofed = Callable[[Store, IdentityRecord, dt.datetime], None]


def _journal_proofed(store: Store, record: IdentityRecord, **facts: str | bool | None) -> None:
    """The proofing decision, with what proves it (keyed hashes, not the
    document number or the eID subject) and a digest binding the stored
    record, salted (lre-log/2) so that erasing the record leaves nothing to
    test a guess of its eID claims against."""
    store.log.append_journal(
        journal.salted_entry(
            LogKind.IDENTITY_PROOFED,
            f"parties/{record.party_id}",
            record.proof_time,
            record=f"parties/{record.party_id}/identityRecords/{record.id}",
            method=record.method.value,
            level=record.level.name.lower(),
            expireTime=record.expire_time,
            recordSaltedSha256=journal.identity_record_salted_digest(record),
            **facts,
        ),
        record.proof_time,
    )


class _Unknown(Exception):
    """No such challenge for the party."""


class ProofingService:
    def __init__(
        self,
        stores: Stores,
        policy: IdentityPolicy,
        proofed: Proofed,
        clock: Clock = utcnow,
    ) -> None:
        self._stores = stores
        self._policy = policy
        self._proofed = proofed
        self._clock = clock

    def record_document_check(
        self,
        party_id: uuid.UUID,
        document_type: str,
        document_number: str,
        document_expires: dt.datetime | None,
        operator_id: str,
        operator_certificate: str = "",
        person_present: bool = False,
    ) -> IdentityRecord:
        """An identity document checked by an operator: level high when the
        person stood before the operator (physical presence, eIDAS 24(1a)),
        substantial when remote; valid until the document expires, at most
        the policy's proofing validity. The number is kept only as a keyed
        hash; the operator is named as typed and as its client certificate
        says."""
        now = self._clock()
        check_document(document_type, document_number, document_expires, operator_id, now)
        assert document_expires is not None
        record = document_record(
            self._policy.secrets_key.current,
            party_id,
            (document_type, document_number, document_expires),
            (operator_id, operator_certificate, person_present),
            now,
            self._policy,
        )
        with self._stores.begin() as store:
            _require_party(store, party_id)
            store.proofing.add_record(record)
            _journal_proofed(
                store,
                record,
                operatorId=operator_id,
                operatorCertificate=operator_certificate or None,
                personPresent=person_present,
                documentType=document_type,
                documentNumberHmac=record.details["document_number_hmac"],
            )
            self._proofed(store, record, now)
        return record

    def _refused(self, party_id: uuid.UUID, method: ProofingMethod, reason: str) -> None:
        """A refusal that commits nothing else, journaled on its own; naming
        no party, only counted (anyone may invent one; the log is permanent)."""
        with self._stores.begin() as store:
            if not store.parties.exists(party_id):
                UNKNOWN_PARTY.inc()
                return
            details = {"method": method.value, "reason": reason}
            journaled(store, LogKind.PROOFING_REFUSED, party_id, self._clock(), **details)

    def list_records(
        self, party_id: uuid.UUID, page_size: int, page_token: str
    ) -> tuple[list[IdentityRecord], str]:
        with self._stores.read() as store:
            _require_party(store, party_id)
            return store.proofing.page(party_id, page_size, page_token)

    def begin_certificate(self, party_id: uuid.UUID) -> ProofingChallenge:
        if not self._policy.trust_anchors:
            raise FailedPrecondition("proofing by certificate is not configured")
        challenge = ProofingChallenge(
            id=uuid.uuid4(),
            party_id=party_id,
            challenge=os.urandom(32),
            expire_time=self._clock() + CHALLENGE_TTL,
            use_time=None,
        )
        with self._stores.begin() as store:
            _require_party(store, party_id)
            store.proofing.add_challenge(challenge)
        return challenge

    def complete_certificate(
        self,
        party_id: uuid.UUID,
        challenge_id: uuid.UUID,
        chain_der: list[bytes],
        signature: bytes,
        revocation_der: list[bytes],
    ) -> IdentityRecord:
        """Level high: the party signed our challenge with the key of a
        certificate that chains to a configured anchor (see certificate_refusal)."""
        if not self._policy.trust_anchors:
            raise FailedPrecondition("proofing by certificate is not configured")
        if not chain_der:
            raise InvalidArgument("certificate_chain", "the party's certificate is required")
        try:
            leaf, *intermediates = [x509.load_der_x509_certificate(der) for der in chain_der]
        except ValueError:
            raise InvalidArgument("certificate_chain", "must be DER X.509 certificates") from None
        try:
            crls = [x509.load_der_x509_crl(der) for der in revocation_der]
        except ValueError:
            raise InvalidArgument("revocation_data", "must be DER CRLs") from None
        now = self._clock()
        # Before the transaction: it may fetch CRLs or ask an OCSP responder.
        checker, lists = self._policy.revocation, self._policy.trusted_lists
        revocation = (
            checker.refusal(leaf, intermediates, list(revocation_der), now)
            if checker is not None
            else None
        )
        qualification = (
            lists.assess(leaf, intermediates, self._policy.trust_anchors, now)
            if lists is not None
            else None
        )
        try:
            record, refused, mismatch = self._certificate(
                party_id,
                challenge_id,
                leaf,
                intermediates,
                crls,
                signature,
                chain_der,
                revocation_der,
                now,
                (revocation, qualification),
            )
        except _Unknown:
            self._refused(party_id, ProofingMethod.CERTIFICATE, "challenge")
            raise AuthenticationFailed("certificate proof refused") from None
        # The challenge stays used (committed) whatever the result.
        if record is None:
            logger.info("certificate proof refused", extra={"reason": refused})
            if mismatch is not None:  # a genuine certificate, of someone else or not qualified
                raise mismatch
            raise AuthenticationFailed("certificate proof refused")
        return record

    def _certificate(
        self,
        party_id: uuid.UUID,
        challenge_id: uuid.UUID,
        leaf: x509.Certificate,
        intermediates: list[x509.Certificate],
        crls: list[x509.CertificateRevocationList],
        signature: bytes,
        chain_der: list[bytes],
        revocation_der: list[bytes],
        now: dt.datetime,
        found: tuple[str | None, Qualification | None] = (None, None),
    ) -> tuple[IdentityRecord | None, str | None, FailedPrecondition | None]:
        """One transaction: the challenge spent, and the record or the refusal
        journaled. ``found``: the server's own revocation refusal and the
        certificate's qualification, both found before the transaction."""
        revocation, qualification = found
        record: IdentityRecord | None = None
        refused: str | None
        with self._stores.begin() as store:
            proofs = store.proofing
            challenge = proofs.use_challenge(challenge_id, now)
            if challenge is None or challenge.party_id != party_id:
                # Rolled back (another party's challenge stays usable), journaled on its own.
                raise _Unknown
            if challenge.use_time is not None or challenge.expire_time <= now:
                refused, reason = "challenge used or expired", "challenge"
            else:
                reason = "certificate"
                refused = certificate_refusal(
                    self._policy.trust_anchors,
                    leaf,
                    intermediates,
                    crls,
                    challenge.challenge,
                    signature,
                    now,
                )
                # Unknown or revoked, as the server found it itself (fails closed).
                refused = refused or revocation
            mismatch: FailedPrecondition | None = None
            matched: dict[str, str] = {}
            if refused is None:
                claimed = _claimed(store, party_id)
                try:
                    matched = bind(claimed, certificate_identity(leaf))
                except IdentityMismatch as exc:
                    refused, mismatch, reason = f"identity: {exc}", exc, "identity_mismatch"
            if refused is None and qualification is not None and self._policy.require_qualified:
                unqualified = qualification_refusal(qualification, claimed.natural_person, matched)
                if unqualified is not None:
                    mismatch = NotQualified(f"the certificate is not qualified: {unqualified}")
                    refused, reason = f"not qualified: {unqualified}", "not_qualified"
            if refused is None:
                record = certificate_record(
                    party_id,
                    leaf,
                    chain_der,
                    revocation_der,
                    matched,
                    now,
                    self._policy,
                    qualification,
                )
                proofs.add_record(record)
                _journal_proofed(
                    store,
                    record,
                    certificateSha256=record.details["sha256"],
                    certificateIssuer=record.details["issuer"],
                    **qualification_facts(qualification),
                )
                self._proofed(store, record, now)
            else:
                journaled(
                    store,
                    LogKind.PROOFING_REFUSED,
                    party_id,
                    now,
                    method=ProofingMethod.CERTIFICATE.value,
                    reason=reason,
                )
        return record, refused, mismatch

    def with_eid_assertion(self, party_id: uuid.UUID, id_token: str, nonce: str) -> IdentityRecord:
        """An ID token from the eID broker (see eid_claims), our nonce in it,
        `acr` mapped to a level, and the nonce spent so that the assertion
        cannot be replayed."""
        broker = self._policy.eid
        if broker is None:
            raise FailedPrecondition("proofing by eID is not configured")
        if not nonce or len(nonce) > 255:
            raise InvalidArgument("nonce", "required, at most 255 characters")
        now = self._clock()
        eid = ProofingMethod.EID_ASSERTION
        try:
            claims = eid_claims(broker, id_token, now)
        except Refused as exc:
            logger.info("eID assertion refused", extra={"reason": str(exc)})
            self._refused(party_id, eid, "assertion")
            raise AuthenticationFailed("eID assertion refused") from None
        level = broker.acr_levels.get(str(claims.get("acr", "")))
        if not hmac.compare_digest(str(claims["nonce"]).encode(), nonce.encode()) or level is None:
            logger.info("eID assertion refused", extra={"reason": "nonce or acr"})
            self._refused(party_id, eid, "nonce_or_acr")
            raise AuthenticationFailed("eID assertion refused")
        try:
            with self._stores.read() as store:
                matched = _bound(store, party_id, eid_identity(claims))
        except IdentityMismatch:
            # Journaled once the read is over, in a transaction of its own.
            self._refused(party_id, eid, "identity_mismatch")
            raise
        record = eid_record(party_id, broker, claims, level, matched, now, self._policy)
        try:
            with self._stores.begin() as store:
                _require_party(store, party_id)
                proofs = store.proofing
                proofs.spend_nonce(broker.issuer, nonce, now)
                proofs.add_record(record)
                _journal_proofed(
                    store,
                    record,
                    eidIssuer=broker.issuer,
                    eidAcr=str(claims.get("acr")),
                    eidSubjectHmac=journal.keyed(
                        self._policy.secrets_key.current, "eid-subject", str(claims["sub"])
                    ),
                )
                self._proofed(store, record, now)
        except WriteConflict:
            logger.info("eID assertion refused", extra={"reason": "nonce replayed"})
            self._refused(party_id, eid, "replayed")
            raise AuthenticationFailed("eID assertion refused") from None
        return record
