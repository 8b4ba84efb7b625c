"""Who may act on a party, over mutual TLS against the real server: every
IdentityService RPC, every caller certificate, every party relation of the
session the call carries (the party's own, another party's, none).

The rules (design.md, trust boundaries): a party's credentials change only
with its own session (or, the first time, the enrolment code e-mailed to it);
its data is read by itself or by operators and auditors; everything else is
judged on what the request carries, not on who asks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from lre.client.parties import enroll_party, log_in, register_party
from lre.dev.tls import TlsFiles
from lre.server.api.policy import AUDITOR, OPERATOR, POLICY
from lre.v1 import identity_pb2, identity_pb2_grpc
from tests.support.clients import ROLES, enroll_person
from tests.support.rpc import channel, error_info
from tests.support.server import ServerProcess, server_process
from tests.support.signer import SignerProcess

PASSWORD = "correct horse battery staple"
OK, DENIED = grpc.StatusCode.OK, grpc.StatusCode.PERMISSION_DENIED
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
# Whose data or credentials these act on: the party's own session, or staff for reads.
OWN_ONLY = {"SetPassword", "EnrollTotp", "SendEmailCode"}
OWN_OR_STAFF = {
    "GetParty",
    "ListIdentityRecords",
    "ListConsents",
    "ListPartyCorrections",
    "ExportPartyData",
}
# Consent is the recipient's: its own session, or an operator recording it.
# So is a professional status: an operator's decision, or the party's own statement.
RECIPIENT_OR_OPERATOR = {
    "GrantConsent": {OK},
    "WithdrawConsent": {grpc.StatusCode.NOT_FOUND},
    "SetProfessionalStatus": {OK},
}


@pytest.fixture
def server(signer_process: SignerProcess, tmp_path: Path, tls: TlsFiles) -> Iterator[ServerProcess]:
    database = f"sqlite:///{tmp_path / 'lre.db'}"
    # Wrong codes on purpose below: no lockout gets in the matrix's way.
    with server_process(
        signer_process, tmp_path, database, tls=tls, run_workers="false", lockout_threshold="1000"
    ) as s:
        yield s


def _expires() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(dt.datetime.now(dt.UTC) + dt.timedelta(days=365))
    return stamp


def _requests(target: str, other: str) -> dict[str, Message]:
    """A request of every RPC, aimed at ``target`` where it names a party."""
    i = identity_pb2
    return {
        "CreateParty": i.CreatePartyRequest(
            request_id="matrix-new",
            party=i.Party(
                kind=i.PARTY_KIND_LEGAL_PERSON, company_name="Nouvelle SA", email="n@new.example"
            ),
        ),
        "GetParty": i.GetPartyRequest(name=target),
        "BeginCertificateProofing": i.BeginCertificateProofingRequest(party=target),
        "CompleteCertificateProofing": i.CompleteCertificateProofingRequest(
            party=target, challenge_id="00000000-0000-0000-0000-000000000000"
        ),
        "ProofWithEidAssertion": i.ProofWithEidAssertionRequest(
            party=target, id_token="x.y.z", nonce="n"
        ),
        "RecordDocumentCheck": i.RecordDocumentCheckRequest(
            party=target,
            document_type="id-card",
            document_number="M1",
            document_expire_time=_expires(),
            operator_id="op",
        ),
        "ListIdentityRecords": i.ListIdentityRecordsRequest(party=target),
        "CorrectParty": i.CorrectPartyRequest(
            party=target,
            given_name="Camille",
            family_name="A-corrected",
            basis="id",
            operator_id="op",
        ),
        "ListPartyCorrections": i.ListPartyCorrectionsRequest(party=target),
        "SetProfessionalStatus": i.SetProfessionalStatusRequest(
            party=target, professional=True, basis="Kbis", operator_id="op"
        ),
        "EnrollCredentials": i.EnrollCredentialsRequest(
            party=target, enrolment_code="WRONG-CODE-0000", password=PASSWORD
        ),
        "SetPassword": i.SetPasswordRequest(party=target, password=PASSWORD),
        "EnrollTotp": i.EnrollTotpRequest(party=target),
        "SendEmailCode": i.SendEmailCodeRequest(party=target),
        "CreateSession": i.CreateSessionRequest(
            party=target, password="not the password", totp_code="000000"
        ),
        "RevokeSession": i.RevokeSessionRequest(token="not-a-session"),
        "SendUnlockCode": i.SendUnlockCodeRequest(party=target),
        "Unlock": i.UnlockRequest(
            party=target,
            code=i.EmailCode(code_id="00000000-0000-0000-0000-000000000000", code="123456"),
        ),
        "GrantConsent": i.GrantConsentRequest(
            request_id="matrix-consent", recipient=target, sender=other, method="portal"
        ),
        "WithdrawConsent": i.WithdrawConsentRequest(
            name=f"{target}/consents/00000000-0000-0000-0000-000000000000"
        ),
        "ListConsents": i.ListConsentsRequest(recipient=target),
        # No such party: an erasure that succeeded would take the matrix's sessions.
        "ErasePartyData": i.ErasePartyDataRequest(
            party="parties/00000000-0000-0000-0000-000000000000", operator_id="op"
        ),
        "ExportPartyData": i.ExportPartyDataRequest(party=target),
    }


# What an allowed call answers when it is judged on its content alone.
JUDGED = {
    "CreateParty": {OK},
    "BeginCertificateProofing": {grpc.StatusCode.FAILED_PRECONDITION},  # not configured
    "CompleteCertificateProofing": {grpc.StatusCode.FAILED_PRECONDITION},
    "ProofWithEidAssertion": {grpc.StatusCode.FAILED_PRECONDITION},
    "RecordDocumentCheck": {OK},
    # Operators only; the first call corrects, the same names again are refused.
    "CorrectParty": {OK, grpc.StatusCode.INVALID_ARGUMENT},
    "EnrollCredentials": {UNAUTHENTICATED},  # the wrong code
    "CreateSession": {UNAUTHENTICATED},  # the wrong password
    "RevokeSession": {UNAUTHENTICATED},  # no such session
    "ErasePartyData": {grpc.StatusCode.NOT_FOUND},  # operators only; no such party
    # Nobody is locked out here: nothing to send a code for, no code to use.
    "SendUnlockCode": {grpc.StatusCode.FAILED_PRECONDITION},
    "Unlock": {grpc.StatusCode.FAILED_PRECONDITION},
}


# The matrix's sessions are opened through this caller.
OPENER = "sender-gateway"


def expected(rpc: str, caller: str, relation: str) -> set[grpc.StatusCode]:
    role = ROLES[caller]
    if role not in POLICY[f"/lre.v1.IdentityService/{rpc}"]:
        return {DENIED}
    if relation != "none" and caller != OPENER:
        # A token presented by another caller than its opener is as unknown
        # as a forged one: refused where the call reads it, ignored elsewhere.
        return expected(rpc, caller, "none") | {UNAUTHENTICATED}
    if rpc in OWN_OR_STAFF and role in (OPERATOR, AUDITOR):
        return {OK}
    if rpc == "CorrectParty" and (relation != "none" or role is not OPERATOR):
        # With a session, its party corrects only an addressee it alone wrote
        # to (none here); without one, only an operator decides.
        not_found = {grpc.StatusCode.NOT_FOUND}
        return {"own": not_found, "other": not_found, "none": {UNAUTHENTICATED}}[relation]
    if rpc in RECIPIENT_OR_OPERATOR:
        judged = RECIPIENT_OR_OPERATOR[rpc]
        if role is OPERATOR:
            return judged
        return {"own": judged, "other": {DENIED}, "none": {UNAUTHENTICATED}}[relation]
    if rpc in OWN_ONLY | OWN_OR_STAFF:
        # At most one e-mailed code a minute: the second caller's own call is slowed.
        own = {OK, grpc.StatusCode.RESOURCE_EXHAUSTED} if rpc == "SendEmailCode" else {OK}
        return {"own": own, "other": {DENIED}, "none": {UNAUTHENTICATED}}[relation]
    return JUDGED[rpc]


def _answer(
    stub: identity_pb2_grpc.IdentityServiceStub,
    rpc: str,
    request: Message,
    metadata: tuple[tuple[str, str], ...],
) -> grpc.StatusCode:
    try:
        getattr(stub, rpc)(request, metadata=metadata, timeout=10)
    except grpc.RpcError as exc:
        return exc.code()
    return OK


def test_every_identity_rpc_by_role_and_party_relation(
    server: ServerProcess, tls: TlsFiles
) -> None:
    assert set(_requests("", "")) == {
        m.rsplit("/", 1)[1] for m in POLICY if m.startswith("/lre.v1.IdentityService/")
    }
    with (
        channel(server.address, tls, OPENER) as gateway,
        channel(server.address, tls, "operator") as operator,
    ):
        portal = identity_pb2_grpc.IdentityServiceStub(gateway)
        checks = identity_pb2_grpc.IdentityServiceStub(operator)
        fields = {"kind": identity_pb2.PARTY_KIND_NATURAL_PERSON, "given_name": "Camille"}
        target = enroll_party(
            portal,
            "m-a",
            checks,
            codes=server.enrolment_codes,
            family_name="A",
            email="a@example.org",
            **fields,
        )
        other = enroll_party(
            portal,
            "m-b",
            checks,
            codes=server.enrolment_codes,
            family_name="B",
            email="b@example.org",
            **fields,
        )
        tokens = {"own": log_in(portal, target), "other": log_in(portal, other), "none": None}
    requests = _requests(target.name, other.name)
    seen = []
    for caller in ROLES:
        with channel(server.address, tls, caller) as ch:
            stub = identity_pb2_grpc.IdentityServiceStub(ch)
            for relation, token in tokens.items():
                metadata = (("authorization", f"Bearer {token}"),) if token else ()
                for rpc, request in requests.items():
                    code = _answer(stub, rpc, request, metadata)
                    assert code in expected(rpc, caller, relation), (caller, relation, rpc, code)
                    seen.append(code)
    assert DENIED in seen and UNAUTHENTICATED in seen and OK in seen


def test_a_gateway_cannot_take_over_or_read_another_party(
    server: ServerProcess, tls: TlsFiles
) -> None:
    """A takeover of a recipient's account through the sender's gateway (its
    credentials, its consent, its reads): every step refused, and the
    recipient's factors still work."""
    with (
        channel(server.address, tls, "recipient-portal") as portal_channel,
        channel(server.address, tls, "sender-gateway") as gateway_channel,
        channel(server.address, tls, "operator") as operator,
    ):
        portal = identity_pb2_grpc.IdentityServiceStub(portal_channel)
        gateway = identity_pb2_grpc.IdentityServiceStub(gateway_channel)
        checks = identity_pb2_grpc.IdentityServiceStub(operator)
        victim = enroll_person(portal, server.enrolment_codes, "t-victim", checks)
        _, attacker_token = register_party(
            gateway,
            "t-attacker",
            checks,
            codes=server.enrolment_codes,
            kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
            company_name="Expediteur SAS",
            email="envoi@expediteur.example",
        )
        i = identity_pb2
        attempts = {
            "SetPassword": i.SetPasswordRequest(party=victim.name, password="attacker password!"),
            "EnrollTotp": i.EnrollTotpRequest(party=victim.name),
            "SendEmailCode": i.SendEmailCodeRequest(party=victim.name),
            "GetParty": i.GetPartyRequest(name=victim.name),
            "ListIdentityRecords": i.ListIdentityRecordsRequest(party=victim.name),
            "EnrollCredentials": i.EnrollCredentialsRequest(
                party=victim.name, enrolment_code="AAAA-BBBB-CCCC", password="attacker password!"
            ),
        }
        as_attacker = (("authorization", f"Bearer {attacker_token}"),)
        for metadata in ((), as_attacker):
            for rpc, request in attempts.items():
                code = _answer(gateway, rpc, request, metadata)
                assert code in (DENIED, UNAUTHENTICATED), (rpc, bool(metadata), code)
        # Nothing changed: the victim's own factors open a session, the attacker's do not.
        assert log_in(portal, victim)
        with pytest.raises(grpc.RpcError) as refused:
            portal.CreateSession(
                i.CreateSessionRequest(
                    party=victim.name, password="attacker password!", totp_code=victim.totp.now()
                )
            )
        assert refused.value.code() == UNAUTHENTICATED


def test_a_session_token_opens_nothing_through_another_caller(
    server: ServerProcess, tls: TlsFiles
) -> None:
    """A token leaked from the portal that opened it (its logs, a proxy) is
    refused through another portal with the answer a forged token gets;
    through its own portal it still works. (Staff read parties without a
    session: a token gives them nothing they do not have.)"""
    with (
        channel(server.address, tls, "recipient-portal") as portal_channel,
        channel(server.address, tls, "operator") as operator,
    ):
        portal = identity_pb2_grpc.IdentityServiceStub(portal_channel)
        checks = identity_pb2_grpc.IdentityServiceStub(operator)
        camille = enroll_person(portal, server.enrolment_codes, "bound", checks)
        token = log_in(portal, camille)
        read = identity_pb2.GetPartyRequest(name=camille.name)
        as_camille = (("authorization", f"Bearer {token}"),)
        as_forger = (("authorization", "Bearer " + "A" * len(token)),)
        assert portal.GetParty(read, metadata=as_camille).name == camille.name
    with channel(server.address, tls, "sender-gateway") as gateway_channel:
        gateway = identity_pb2_grpc.IdentityServiceStub(gateway_channel)
        answers = set()
        for metadata in (as_camille, as_forger):
            with pytest.raises(grpc.RpcError) as refused:
                gateway.GetParty(read, metadata=metadata, timeout=10)
            answers.add((refused.value.code(), refused.value.details()))
        assert answers == {(UNAUTHENTICATED, "invalid or expired session")}
        # Nor can it be ended there: revoking answers as for an unknown token.
        with pytest.raises(grpc.RpcError) as refused:
            gateway.RevokeSession(identity_pb2.RevokeSessionRequest(token=token), timeout=10)
        assert refused.value.code() == UNAUTHENTICATED
    with channel(server.address, tls, "recipient-portal") as portal_channel:
        portal = identity_pb2_grpc.IdentityServiceStub(portal_channel)
        assert portal.GetParty(read, metadata=as_camille).name == camille.name
        portal.RevokeSession(identity_pb2.RevokeSessionRequest(token=token), timeout=10)
        with pytest.raises(grpc.RpcError) as ended:
            portal.GetParty(read, metadata=as_camille)
        assert ended.value.code() == UNAUTHENTICATED


def test_idempotency_keys_are_scoped_to_the_calling_gateway(
    server: ServerProcess, tls: TlsFiles
) -> None:
    i = identity_pb2
    camille = i.Party(
        kind=i.PARTY_KIND_NATURAL_PERSON,
        given_name="Camille",
        family_name="Dupont",
        email="camille@example.org",
    )
    probe = i.Party(kind=i.PARTY_KIND_LEGAL_PERSON, company_name="Curieux", email="c@x.example")
    with (
        channel(server.address, tls, "recipient-portal") as portal_channel,
        channel(server.address, tls, "sender-gateway") as gateway_channel,
    ):
        portal = identity_pb2_grpc.IdentityServiceStub(portal_channel)
        gateway = identity_pb2_grpc.IdentityServiceStub(gateway_channel)
        mine = portal.CreateParty(i.CreatePartyRequest(request_id="same-key", party=camille))
        theirs = gateway.CreateParty(i.CreatePartyRequest(request_id="same-key", party=probe))
        assert theirs.name != mine.name and theirs.email == "c@x.example"
        retried = portal.CreateParty(i.CreatePartyRequest(request_id="same-key", party=camille))
        assert retried.name == mine.name
        with pytest.raises(grpc.RpcError) as reused:
            portal.CreateParty(i.CreatePartyRequest(request_id="same-key", party=probe))
        assert reused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_info(reused.value) == ("REQUEST_ID_REUSED", {"field": "request_id"})
        assert (reused.value.details() or "").startswith("request_id:")
