"""IdentityService over gRPC: protobuf in, IdentityService calls, protobuf out."""

from __future__ import annotations

import uuid

import grpc

from lre.server.api.auth import optional_session
from lre.server.api.convert import request_time, timestamp
from lre.server.api.corrections import CorrectionCalls
from lre.server.api.errors import domain_errors
from lre.server.api.identity_convert import (
    KINDS,
    LEVELS,
    consent_message,
    party_message,
    record_message,
)
from lre.server.api.names import parse_id
from lre.server.api.personal_data import PersonalDataCalls
from lre.server.api.policy import OPERATOR, current_caller, source_of
from lre.server.domain.errors import InvalidArgument, SessionRequired
from lre.server.domain.identity import (
    professional_status,
    require_own,
    require_recipient_or_operator,
)
from lre.server.services.identity import IdentityService, NewParty, ProfessionalDecision
from lre.server.services.identity.corrections import CorrectionService
from lre.server.services.identity.erasure import ErasureService
from lre.v1 import identity_pb2, identity_pb2_grpc


def _consent_id(name: str) -> tuple[str, str]:
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "parties" or parts[2] != "consents":
        raise InvalidArgument("name", "must be parties/{id}/consents/{id}")
    return parts[1], parts[3]


class IdentityServicer(
    CorrectionCalls, PersonalDataCalls, identity_pb2_grpc.IdentityServiceServicer
):
    def __init__(
        self,
        service: IdentityService,
        corrections: CorrectionService | None = None,
        erasure: ErasureService | None = None,
    ) -> None:
        self._service = service
        self._corrections = corrections
        self._erasure = erasure

    def _own(self, context: grpc.ServicerContext, party_id: uuid.UUID) -> None:
        """Only the party's own session acts on its credentials."""
        require_own(optional_session(context, self._service), str(party_id))

    def _readable(self, context: grpc.ServicerContext, party_id: uuid.UUID) -> None:
        """A party's data: to the party itself, or to operators and auditors."""
        if not current_caller().staff:
            self._own(context, party_id)

    def CreateParty(
        self, request: identity_pb2.CreatePartyRequest, context: grpc.ServicerContext
    ) -> identity_pb2.Party:
        with domain_errors(context):
            party = request.party
            kind = KINDS.get(party.kind)
            if kind is None:
                raise InvalidArgument(
                    "party.kind", "must be PARTY_KIND_NATURAL_PERSON or PARTY_KIND_LEGAL_PERSON"
                )
            address = party.postal_address
            created = self._service.parties.create(
                current_caller().name,
                request.request_id,
                NewParty(
                    kind=kind,
                    professional=party.professional,
                    email=party.email,
                    given_name=party.given_name,
                    family_name=party.family_name,
                    company_name=party.company_name,
                    postal_address={
                        "lines": list(address.lines),
                        "postal_code": address.postal_code,
                        "locality": address.locality,
                        "country_code": address.country_code,
                    }
                    if party.HasField("postal_address")
                    else None,
                    registration_id=party.registration_id,
                ),
            )
            return party_message(created, self._service.parties.level(created.id))

    def GetParty(
        self, request: identity_pb2.GetPartyRequest, context: grpc.ServicerContext
    ) -> identity_pb2.Party:
        with domain_errors(context):
            party_id = parse_id(request.name, "name", "parties")
            self._readable(context, party_id)
            return party_message(
                self._service.parties.get(party_id), self._service.parties.level(party_id)
            )

    def SetProfessionalStatus(
        self, request: identity_pb2.SetProfessionalStatusRequest, context: grpc.ServicerContext
    ) -> identity_pb2.Party:
        with domain_errors(context):
            party_id = parse_id(request.party, "party", "parties")
            caller = current_caller()
            operator = OPERATOR in caller.roles
            session = None if operator else optional_session(context, self._service)
            basis = professional_status(session, str(party_id), operator)
            changed = self._service.parties.set_professional(
                party_id,
                ProfessionalDecision(
                    professional=request.professional,
                    basis=basis,
                    evidence=request.basis,
                    operator_id=request.operator_id if operator else "",
                    operator_certificate=caller.name if operator else "",
                ),
            )
            return party_message(changed, self._service.parties.level(party_id))

    def RecordDocumentCheck(
        self, request: identity_pb2.RecordDocumentCheckRequest, context: grpc.ServicerContext
    ) -> identity_pb2.IdentityRecord:
        with domain_errors(context):
            record = self._service.proofing.record_document_check(
                parse_id(request.party, "party", "parties"),
                request.document_type,
                request.document_number,
                request_time(request.document_expire_time, "document_expire_time")
                if request.HasField("document_expire_time")
                else None,
                request.operator_id,
                current_caller().name,
                request.person_present,
            )
            return record_message(record)

    def BeginCertificateProofing(
        self, request: identity_pb2.BeginCertificateProofingRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ProofingChallenge:
        with domain_errors(context):
            challenge = self._service.proofing.begin_certificate(
                parse_id(request.party, "party", "parties")
            )
            return identity_pb2.ProofingChallenge(
                challenge_id=str(challenge.id),
                challenge=challenge.challenge,
                expire_time=timestamp(challenge.expire_time),
            )

    def CompleteCertificateProofing(
        self,
        request: identity_pb2.CompleteCertificateProofingRequest,
        context: grpc.ServicerContext,
    ) -> identity_pb2.IdentityRecord:
        with domain_errors(context):
            record = self._service.proofing.complete_certificate(
                parse_id(request.party, "party", "parties"),
                parse_id(f"challenges/{request.challenge_id}", "challenge_id", "challenges"),
                list(request.certificate_chain),
                request.signature,
                list(request.revocation_data),
            )
            return record_message(record)

    def ProofWithEidAssertion(
        self, request: identity_pb2.ProofWithEidAssertionRequest, context: grpc.ServicerContext
    ) -> identity_pb2.IdentityRecord:
        with domain_errors(context):
            record = self._service.proofing.with_eid_assertion(
                parse_id(request.party, "party", "parties"), request.id_token, request.nonce
            )
            return record_message(record)

    def ListIdentityRecords(
        self, request: identity_pb2.ListIdentityRecordsRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ListIdentityRecordsResponse:
        with domain_errors(context):
            party_id = parse_id(request.party, "party", "parties")
            self._readable(context, party_id)
            records, token = self._service.proofing.list_records(
                party_id, request.page_size, request.page_token
            )
            return identity_pb2.ListIdentityRecordsResponse(
                identity_records=[record_message(r) for r in records], next_page_token=token
            )

    def SetPassword(
        self, request: identity_pb2.SetPasswordRequest, context: grpc.ServicerContext
    ) -> identity_pb2.SetPasswordResponse:
        with domain_errors(context):
            party_id = parse_id(request.party, "party", "parties")
            self._own(context, party_id)
            self._service.credentials.set_password(party_id, request.password)
            return identity_pb2.SetPasswordResponse()

    def EnrollCredentials(
        self, request: identity_pb2.EnrollCredentialsRequest, context: grpc.ServicerContext
    ) -> identity_pb2.EnrollTotpResponse:
        with domain_errors(context):
            uri = self._service.credentials.enroll(
                parse_id(request.party, "party", "parties"),
                request.enrolment_code,
                request.password,
                source_of(context),
            )
            return identity_pb2.EnrollTotpResponse(provisioning_uri=uri)

    def EnrollTotp(
        self, request: identity_pb2.EnrollTotpRequest, context: grpc.ServicerContext
    ) -> identity_pb2.EnrollTotpResponse:
        with domain_errors(context):
            party_id = parse_id(request.party, "party", "parties")
            self._own(context, party_id)
            uri = self._service.credentials.enroll_totp(party_id)
            return identity_pb2.EnrollTotpResponse(provisioning_uri=uri)

    def CreateSession(
        self, request: identity_pb2.CreateSessionRequest, context: grpc.ServicerContext
    ) -> identity_pb2.Session:
        with domain_errors(context):
            party = parse_id(request.party, "party", "parties")
            which = request.WhichOneof("one_time_code")
            if which is None:
                raise InvalidArgument(
                    "one_time_code", "a TOTP code or an e-mailed code is required"
                )
            email_code = None
            if which == "email_code":
                try:
                    code_id = uuid.UUID(request.email_code.code_id)
                except ValueError:
                    raise InvalidArgument(
                        "email_code.code_id", "the code_id SendEmailCode returned"
                    ) from None
                email_code = (code_id, request.email_code.code)
            issued = self._service.sessions.create(
                party,
                request.password,
                request.totp_code,
                email_code,
                source_of(context),
                current_caller().name,
            )
            return identity_pb2.Session(
                token=issued.token,
                party=f"parties/{issued.session.party_id}",
                level=LEVELS[issued.session.level],
                expire_time=timestamp(issued.session.expires_at),
                proofing_current=issued.session.proofing_current,
            )

    def SendUnlockCode(
        self, request: identity_pb2.SendUnlockCodeRequest, context: grpc.ServicerContext
    ) -> identity_pb2.SendUnlockCodeResponse:
        with domain_errors(context):
            party_id = parse_id(request.party, "party", "parties")
            code_id, expire_time = self._service.unlocks.send_code(party_id, source_of(context))
            return identity_pb2.SendUnlockCodeResponse(
                code_id=str(code_id), expire_time=timestamp(expire_time)
            )

    def Unlock(
        self, request: identity_pb2.UnlockRequest, context: grpc.ServicerContext
    ) -> identity_pb2.UnlockResponse:
        with domain_errors(context):
            party_id = parse_id(request.party, "party", "parties")
            try:
                code_id = uuid.UUID(request.code.code_id)
            except ValueError:
                raise InvalidArgument(
                    "code.code_id", "the code_id SendUnlockCode returned"
                ) from None
            if not request.code.code.strip() or len(request.code.code) > 16:
                raise InvalidArgument("code.code", "required, the digits e-mailed")
            self._service.unlocks.unlock(party_id, code_id, request.code.code, source_of(context))
            return identity_pb2.UnlockResponse()

    def SendEmailCode(
        self, request: identity_pb2.SendEmailCodeRequest, context: grpc.ServicerContext
    ) -> identity_pb2.SendEmailCodeResponse:
        with domain_errors(context):
            party_id = parse_id(request.party, "party", "parties")
            session = optional_session(context, self._service)
            if session is not None:
                require_own(session, str(party_id))
            elif not request.password:
                raise SessionRequired("the party's password or its own session is required")
            code_id, expire_time = self._service.credentials.send_email_code(
                party_id, None if session is not None else request.password, source_of(context)
            )
            return identity_pb2.SendEmailCodeResponse(
                code_id=str(code_id), expire_time=timestamp(expire_time)
            )

    def RevokeSession(
        self, request: identity_pb2.RevokeSessionRequest, context: grpc.ServicerContext
    ) -> identity_pb2.RevokeSessionResponse:
        with domain_errors(context):
            self._service.sessions.revoke(request.token, current_caller().name)
            return identity_pb2.RevokeSessionResponse()

    def _recipient_or_operator(self, context: grpc.ServicerContext, recipient_id: uuid.UUID) -> str:
        """Consent is the recipient's: its own session, or an operator recording
        it. Returns the scope of the request's idempotency key."""
        caller = current_caller()
        operator = OPERATOR in caller.roles
        session = None if operator else optional_session(context, self._service)
        require_recipient_or_operator(session, str(recipient_id), operator)
        return f"parties/{session.party_id}" if session else caller.name

    def GrantConsent(
        self, request: identity_pb2.GrantConsentRequest, context: grpc.ServicerContext
    ) -> identity_pb2.Consent:
        with domain_errors(context):
            recipient_id = parse_id(request.recipient, "recipient", "parties")
            scope = self._recipient_or_operator(context, recipient_id)
            consent = self._service.consents.grant(
                scope,
                request.request_id,
                recipient_id,
                parse_id(request.sender, "sender", "parties"),
                request.method,
                request.consent_form_sha256,
            )
            return consent_message(consent)

    def WithdrawConsent(
        self, request: identity_pb2.WithdrawConsentRequest, context: grpc.ServicerContext
    ) -> identity_pb2.Consent:
        with domain_errors(context):
            party, consent_id = _consent_id(request.name)
            recipient_id = parse_id(f"parties/{party}", "name", "parties")
            self._recipient_or_operator(context, recipient_id)
            return consent_message(
                self._service.consents.withdraw(
                    recipient_id, parse_id(f"consents/{consent_id}", "name", "consents")
                )
            )

    def ListConsents(
        self, request: identity_pb2.ListConsentsRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ListConsentsResponse:
        with domain_errors(context):
            recipient_id = parse_id(request.recipient, "recipient", "parties")
            self._readable(context, recipient_id)
            consents, token = self._service.consents.list(
                recipient_id,
                request.page_size,
                request.page_token,
            )
            return identity_pb2.ListConsentsResponse(
                consents=[consent_message(c) for c in consents], next_page_token=token
            )
