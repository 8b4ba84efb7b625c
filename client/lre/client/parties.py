"""Parties as the walkthroughs (and the tests) make them: created, proofed by
an operator's document check, enrolled with the code e-mailed to them, logged
in with two factors."""

from __future__ import annotations

import datetime as dt
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyotp
from google.protobuf import timestamp_pb2

from lre.v1 import identity_pb2, identity_pb2_grpc

# Reads the enrolment code e-mailed to a party ("parties/{id}") after proofing.
EnrolmentCodes = Callable[[str], str]


@dataclass(frozen=True)
class Enrolled:
    """A party with its login factors (a walkthrough's or a test's, never a user's)."""

    name: str
    password: str
    totp: pyotp.TOTP


def enroll_party(
    identity: identity_pb2_grpc.IdentityServiceStub,
    request_id: str,
    operator: identity_pb2_grpc.IdentityServiceStub | None = None,
    *,
    codes: EnrolmentCodes,
    **fields: Any,
) -> Enrolled:
    """Creates a party, has an operator check its identity document (level
    substantial; ``operator`` is the operator's connection under mutual TLS),
    then, as the party would with the enrolment code e-mailed to it (read by
    ``codes``), chooses a password and registers a TOTP device."""
    party = identity.CreateParty(
        identity_pb2.CreatePartyRequest(request_id=request_id, party=identity_pb2.Party(**fields))
    )
    return proof_and_enroll(identity, party.name, request_id, operator, codes=codes)


def proof_and_enroll(
    identity: identity_pb2_grpc.IdentityServiceStub,
    party: str,
    request_id: str,
    operator: identity_pb2_grpc.IdentityServiceStub | None = None,
    *,
    codes: EnrolmentCodes,
) -> Enrolled:
    """An existing party (``party``, "parties/{id}") proofed by an operator's
    document check, then enrolled with the code e-mailed to it."""
    expires = timestamp_pb2.Timestamp()
    expires.FromDatetime(dt.datetime.now(dt.UTC) + dt.timedelta(days=365))
    (operator or identity).RecordDocumentCheck(
        identity_pb2.RecordDocumentCheckRequest(
            party=party,
            document_type="id-card",
            document_number=f"DEMO-{request_id}",
            document_expire_time=expires,
            operator_id="walkthrough",
            person_present=True,  # level high, as a sender needs
        )
    )
    password = f"walkthrough {uuid.uuid4()}"
    uri = identity.EnrollCredentials(
        identity_pb2.EnrollCredentialsRequest(
            party=party, enrolment_code=codes(party), password=password
        )
    ).provisioning_uri
    totp = pyotp.TOTP(urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0])
    return Enrolled(party, password, totp)


def log_in(
    identity: identity_pb2_grpc.IdentityServiceStub,
    party: Enrolled,
    at: dt.datetime | None = None,
) -> str:
    """A two-factor session token; ``at`` is the server's time when it is not ours."""
    code = party.totp.at(at) if at else party.totp.now()
    session = identity.CreateSession(
        identity_pb2.CreateSessionRequest(party=party.name, password=party.password, totp_code=code)
    )
    return session.token


def register_party(
    identity: identity_pb2_grpc.IdentityServiceStub,
    request_id: str,
    operator: identity_pb2_grpc.IdentityServiceStub | None = None,
    *,
    codes: EnrolmentCodes,
    **fields: Any,
) -> tuple[str, str]:
    """Enrolls a party and opens a two-factor session: (party name, token)."""
    party = enroll_party(identity, request_id, operator, codes=codes, **fields)
    return party.name, log_in(identity, party)
