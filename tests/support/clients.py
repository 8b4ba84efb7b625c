"""The server's public API as its callers use it in the end-to-end tests:
parties registered, letters deposited, notifications awaited."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from google.protobuf import timestamp_pb2

from lre.client.parties import Enrolled, EnrolmentCodes, enroll_party, register_party
from lre.dev.tls import CALLERS
from lre.server.api.policy import Role
from lre.v1 import common_pb2, custody_pb2, custody_pb2_grpc, identity_pb2, identity_pb2_grpc
from tests.support.processes import wait_for

CONTENT = b"%PDF-1.7 lettre de resiliation " * 5000  # ~150 KB, several chunks
ANNEX = b"annexe: etat des lieux\n" * 100

# The role of each caller of the development PKI, by its short name ("operator").
ROLES = {dns.split(".")[0]: Role(role) for dns, role in CALLERS.items()}


def bearer(token: str) -> tuple[tuple[str, str]]:
    """The call metadata of a party logged in with ``token``."""
    return (("authorization", f"Bearer {token}"),)


def enroll_person(
    identity: identity_pb2_grpc.IdentityServiceStub,
    codes: EnrolmentCodes,
    label: str,
    operator: identity_pb2_grpc.IdentityServiceStub,
    given_name: str = "Camille",
    family_name: str = "Dupont",
) -> Enrolled:
    """A natural person, proofed by an operator's document check and
    enrolled (password and TOTP), not logged in."""
    return enroll_party(
        identity,
        label,
        operator,
        codes=codes,
        kind=identity_pb2.PARTY_KIND_NATURAL_PERSON,
        given_name=given_name,
        family_name=family_name,
        email=f"{given_name.lower()}@example.org",
    )


def register_company(
    identity: identity_pb2_grpc.IdentityServiceStub,
    codes: EnrolmentCodes,
    label: str,
    name: str,
    email: str,
    operator: identity_pb2_grpc.IdentityServiceStub | None = None,
) -> tuple[str, str]:
    """A professional (no consent needed: an operator recorded the decision),
    proofed and logged in: (party name, token)."""
    party, token = register_party(
        identity,
        label,
        operator,
        codes=codes,
        kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
        professional=True,
        company_name=name,
        email=email,
    )
    confirm_professional(operator or identity, party)
    return party, token


def confirm_professional(operator: identity_pb2_grpc.IdentityServiceStub, party: str) -> None:
    """An operator's decision, on documents, that ``party`` receives as a
    professional (a gateway's word at creation is only a claim)."""
    decided = operator.SetProfessionalStatus(
        identity_pb2.SetProfessionalStatusRequest(
            party=party, professional=True, basis="Kbis extract", operator_id="desk"
        ),
        timeout=10,
    )
    assert decided.professional


def create_party(
    stub: identity_pb2_grpc.IdentityServiceStub, request_id: str, professional: bool = False
) -> identity_pb2.Party:
    """A natural person, created and nothing more."""
    return stub.CreateParty(
        identity_pb2.CreatePartyRequest(
            request_id=request_id,
            party=identity_pb2.Party(
                kind=identity_pb2.PARTY_KIND_NATURAL_PERSON,
                professional=professional,
                given_name="Camille",
                family_name="Dupont",
                email="camille@example.org",
            ),
        ),
        timeout=10,
    )


def expires_in(days: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(dt.datetime.now(dt.UTC) + dt.timedelta(days=days))
    return stamp


def deposit_letter(
    custody: custody_pb2_grpc.CustodyServiceStub,
    token: str,
    recipient: str,
    request_id: str,
    parts=None,
):
    """DepositLetter streamed in 32 KiB chunks; ``parts`` are (filename, media
    type, data), a PDF and an annex by default."""
    parts = parts or [
        ("resiliation.pdf", "application/pdf", CONTENT),
        ("annexe.txt", "text/plain", ANNEX),
    ]

    def messages() -> Iterator[custody_pb2.DepositLetterRequest]:
        yield custody_pb2.DepositLetterRequest(
            envelope=custody_pb2.LetterEnvelope(
                request_id=request_id,
                recipient=recipient,
                parts=[
                    custody_pb2.ContentPart(filename=f, media_type=m, size_bytes=len(d))
                    for f, m, d in parts
                ],
            )
        )
        for index, (_, _, data) in enumerate(parts):
            for offset in range(0, len(data), 32 * 1024):
                yield custody_pb2.DepositLetterRequest(
                    chunk=custody_pb2.ContentChunk(
                        part_index=index, data=data[offset : offset + 32 * 1024]
                    )
                )

    return custody.DepositLetter(messages(), metadata=bearer(token), timeout=30)


def wait_notified(
    custody: custody_pb2_grpc.CustodyServiceStub,
    letters: list[custody_pb2.Letter],
    metadata: tuple[tuple[str, str], ...],
) -> None:
    """Until the server's own dispatcher has notified every one of ``letters``."""
    for letter in letters:
        request = custody_pb2.GetLetterRequest(name=letter.name)
        assert wait_for(
            lambda request=request: (
                custody.GetLetter(request, metadata=metadata).state
                == common_pb2.LETTER_STATE_NOTIFIED
            ),
            timeout=30,
        ), letter.name
