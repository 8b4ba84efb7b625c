"""IdentityService's personal data calls: erasure on request and the
party's own export (GDPR art. 15, 17, 20)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import grpc

from lre.server.api.errors import domain_errors
from lre.server.api.identity_convert import party_message
from lre.server.api.names import parse_id
from lre.server.api.policy import OPERATOR, current_caller
from lre.server.domain.errors import FailedPrecondition
from lre.server.services.identity import IdentityService
from lre.server.services.identity.erasure import ErasureService
from lre.v1 import identity_pb2


class PersonalDataCalls:
    """Mixed into the IdentityServicer, whose ``_readable`` says who reads a party."""

    _service: IdentityService
    _erasure: ErasureService | None

    # The servicer's: who may read a party's data.
    _readable: Callable[[grpc.ServicerContext, uuid.UUID], None]

    def _erasing(self) -> ErasureService:
        if self._erasure is None:
            raise FailedPrecondition("this server keeps no personal data schedule")
        return self._erasure

    def ErasePartyData(
        self, request: identity_pb2.ErasePartyDataRequest, context: grpc.ServicerContext
    ) -> identity_pb2.Party:
        with domain_errors(context):
            party_id = parse_id(request.party, "party", "parties")
            self._erasing().erase_on_request(party_id, request.operator_id, current_caller().name)
            return party_message(self._service.parties.get(party_id), None)

    def ExportPartyData(
        self, request: identity_pb2.ExportPartyDataRequest, context: grpc.ServicerContext
    ) -> identity_pb2.PartyDataExport:
        with domain_errors(context):
            party_id = parse_id(request.party, "party", "parties")
            self._readable(context, party_id)
            caller = current_caller()
            actor = caller.name if OPERATOR in caller.roles else f"parties/{party_id}"
            return identity_pb2.PartyDataExport(
                content_type="application/json",
                data=self._erasing().export(party_id, actor),
            )
