"""IdentityService's name corrections: a sender's addressee corrected by
the sender before notification, or a party's name by an operator on a basis."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import grpc

from lre.server.api.auth import optional_session
from lre.server.api.errors import domain_errors
from lre.server.api.identity_convert import correction_message
from lre.server.api.names import parse_id
from lre.server.api.policy import OPERATOR, current_caller
from lre.server.domain.corrections import Names
from lre.server.domain.errors import AuthenticationRequired, FailedPrecondition, SessionRequired
from lre.server.services.identity import IdentityService
from lre.server.services.identity.corrections import CorrectionService
from lre.v1 import identity_pb2


class CorrectionCalls:
    """Mixed into the IdentityServicer, whose ``_readable`` says who reads a party."""

    _service: IdentityService
    _corrections: CorrectionService | None

    # The servicer's: who may read a party's data.
    _readable: Callable[[grpc.ServicerContext, uuid.UUID], None]

    def _correcting(self) -> CorrectionService:
        if self._corrections is None:
            raise FailedPrecondition("corrections need the signer, which this server lacks")
        return self._corrections

    def CorrectParty(
        self, request: identity_pb2.CorrectPartyRequest, context: grpc.ServicerContext
    ) -> identity_pb2.PartyCorrection:
        with domain_errors(context):
            caller = current_caller()
            sender = None
            operator_id = request.operator_id
            # With a session, the session's party corrects its own addressee;
            # without one, an operator decides.
            session = optional_session(context, self._service)
            if session is not None:
                if not (session.strong and session.proofing_current):
                    raise AuthenticationRequired(
                        "a sender's strong session with a current proofing is required"
                    )
                sender = uuid.UUID(session.party_id)
                operator_id = f"parties/{session.party_id}"
            elif OPERATOR not in caller.roles:
                raise SessionRequired("the sender's session is required")
            return correction_message(
                self._correcting().correct(
                    parse_id(request.party, "party", "parties"),
                    Names(request.given_name, request.family_name, request.company_name),
                    request.basis,
                    operator_id,
                    caller.name,
                    sender,
                )
            )

    def ListPartyCorrections(
        self, request: identity_pb2.ListPartyCorrectionsRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ListPartyCorrectionsResponse:
        with domain_errors(context):
            party_id = parse_id(request.party, "party", "parties")
            self._readable(context, party_id)
            return identity_pb2.ListPartyCorrectionsResponse(
                corrections=[correction_message(c) for c in self._correcting().list(party_id)]
            )
