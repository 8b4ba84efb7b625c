"""IdentityService through the real server process, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pyotp
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client.parser import text_string_to_metric_families

from lre.client.parties import EnrolmentCodes
from lre.server.adapters.at_rest import SecretsKeys
from lre.server.storage import db
from lre.v1 import common_pb2, custody_pb2_grpc, identity_pb2, identity_pb2_grpc
from tests.support.clients import confirm_professional, create_party, deposit_letter, expires_in
from tests.support.parties import outbox_enrolment_code
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.proofing import AUDIENCE, BROKER, CA, ISSUER, person_subject
from tests.support.rpc import SERVING, error_info, health_status
from tests.support.signer import SignerProcess

PASSWORD = "correct horse battery staple"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "server.key"
    path.write_text(secrets.token_hex(32))
    return path


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def channel(
    database_url: str,
    key_file: Path,
    tmp_path: Path,
    metrics_port: int,
    signer_process: SignerProcess,
) -> Iterator[grpc.Channel]:
    """The server as an operator configures it: trust anchors and an eID broker from files."""
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(CA.cert.public_bytes(serialization.Encoding.PEM))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [BROKER.jwk()]}))
    port = free_port()
    env = {
        "LRE_SERVER_SECRETS_KEY_FILE": str(key_file),
        "LRE_SERVER_DATABASE_URL": database_url,
        "LRE_SERVER_GRPC_ADDRESS": f"127.0.0.1:{port}",
        "LRE_SERVER_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
        "LRE_SERVER_LOCKOUT_THRESHOLD": "3",
        "LRE_SERVER_SIGNER_ADDRESS": signer_process.grpc_address,
        "LRE_SERVER_RUN_WORKERS": "false",
        "LRE_SERVER_IDENTITY_TRUST_ANCHORS_FILE": str(anchors),
        "LRE_SERVER_EID_JWKS_FILE": str(jwks),
        "LRE_SERVER_EID_ISSUER": ISSUER,
        "LRE_SERVER_EID_AUDIENCE": AUDIENCE,
    }
    subprocess.run(
        [str(BIN / "lre-server"), "migrate"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    log = tmp_path / "server.log"
    with running([str(BIN / "lre-server"), "serve"], env, log):
        address = f"127.0.0.1:{port}"
        assert wait_for(lambda: health_status(address, "lre.v1.IdentityService") == SERVING), (
            log.read_text()
        )
        with grpc.insecure_channel(address) as opened:
            yield opened
    logged = log.read_text()
    assert PASSWORD not in logged and "19AB12345" not in logged


@pytest.fixture
def stub(channel: grpc.Channel) -> identity_pb2_grpc.IdentityServiceStub:
    return identity_pb2_grpc.IdentityServiceStub(channel)


@pytest.fixture
def codes(database_url: str, key_file: Path) -> Iterator[EnrolmentCodes]:
    """The enrolment codes proofing e-mails (the outbox does not run here)."""
    engine = db.make_engine(database_url)
    key = SecretsKeys(bytes.fromhex(key_file.read_text()))
    yield lambda party: outbox_enrolment_code(engine, key, party)
    engine.dispose()


def _enroll(
    stub: identity_pb2_grpc.IdentityServiceStub, codes: EnrolmentCodes, party: str
) -> pyotp.TOTP:
    uri = stub.EnrollCredentials(
        identity_pb2.EnrollCredentialsRequest(
            party=party, enrolment_code=codes(party), password=PASSWORD
        ),
        timeout=10,
    ).provisioning_uri
    return pyotp.TOTP(urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0])


def test_a_party_is_proofed_authenticates_and_consents(
    stub: identity_pb2_grpc.IdentityServiceStub, codes: EnrolmentCodes
) -> None:
    party = create_party(stub, "p-1")
    assert create_party(stub, "p-1").name == party.name  # a retried create returns the first party
    assert party.assurance_level == identity_pb2.ASSURANCE_LEVEL_UNSPECIFIED
    record = stub.RecordDocumentCheck(
        identity_pb2.RecordDocumentCheckRequest(
            party=party.name,
            document_type="passport",
            document_number="19AB12345",
            document_expire_time=expires_in(400),
            operator_id="op-7",
        ),
        timeout=10,
    )
    assert record.level == identity_pb2.ASSURANCE_LEVEL_SUBSTANTIAL
    assert (
        stub.GetParty(identity_pb2.GetPartyRequest(name=party.name)).assurance_level == record.level
    )
    listed = stub.ListIdentityRecords(identity_pb2.ListIdentityRecordsRequest(party=party.name))
    assert [r.name for r in listed.identity_records] == [record.name]

    totp = _enroll(stub, codes, party.name)
    session = stub.CreateSession(
        identity_pb2.CreateSessionRequest(
            party=party.name, password=PASSWORD, totp_code=totp.now()
        ),
        timeout=10,
    )
    assert session.token and session.level == identity_pb2.ASSURANCE_LEVEL_SUBSTANTIAL
    stub.RevokeSession(identity_pb2.RevokeSessionRequest(token=session.token), timeout=10)

    sender = create_party(stub, "p-2")
    consent = stub.GrantConsent(
        identity_pb2.GrantConsentRequest(
            request_id="c-1", recipient=party.name, sender=sender.name, method="signed-form"
        )
    )
    assert consent.name.startswith(f"{party.name}/consents/")
    withdrawn = stub.WithdrawConsent(identity_pb2.WithdrawConsentRequest(name=consent.name))
    assert withdrawn.HasField("withdraw_time")
    assert (
        len(stub.ListConsents(identity_pb2.ListConsentsRequest(recipient=party.name)).consents) == 1
    )


def _error(call) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


def test_bad_input_gets_the_right_code_and_field(
    stub: identity_pb2_grpc.IdentityServiceStub,
) -> None:
    bad_email = _error(
        lambda: stub.CreateParty(
            identity_pb2.CreatePartyRequest(
                request_id="x",
                party=identity_pb2.Party(
                    kind=identity_pb2.PARTY_KIND_LEGAL_PERSON, company_name="A", email="nope"
                ),
            )
        )
    )
    assert bad_email.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(bad_email)
    assert status is not None
    violations = error_details_pb2.BadRequest()
    status.details[0].Unpack(violations)
    assert violations.field_violations[0].field == "party.email"
    assert (
        _error(lambda: stub.GetParty(identity_pb2.GetPartyRequest(name="letters/1"))).code()
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (
        _error(
            lambda: stub.GetParty(identity_pb2.GetPartyRequest(name=f"parties/{uuid.uuid4()}"))
        ).code()
        == grpc.StatusCode.NOT_FOUND
    )
    unproofed = create_party(stub, "p-3")
    assert (
        _error(
            lambda: stub.EnrollCredentials(
                identity_pb2.EnrollCredentialsRequest(
                    party=unproofed.name, enrolment_code="ABCD-EFGH-JKLM", password=PASSWORD
                )
            )
        ).code()
        == grpc.StatusCode.UNAUTHENTICATED
    )
    assert (
        _error(
            lambda: stub.ProofWithEidAssertion(
                identity_pb2.ProofWithEidAssertionRequest(party=unproofed.name)
            )
        ).code()
        == grpc.StatusCode.INVALID_ARGUMENT  # no nonce
    )


def test_brute_force_ends_in_resource_exhausted(
    stub: identity_pb2_grpc.IdentityServiceStub, codes: EnrolmentCodes, metrics_port: int
) -> None:
    party = create_party(stub, "p-4")
    stub.RecordDocumentCheck(
        identity_pb2.RecordDocumentCheckRequest(
            party=party.name,
            document_type="id-card",
            document_number="X1",
            document_expire_time=expires_in(100),
            operator_id="op",
        )
    )
    _enroll(stub, codes, party.name)
    answers = []
    for _ in range(4):
        answers.append(
            _error(
                lambda: stub.CreateSession(
                    identity_pb2.CreateSessionRequest(
                        party=party.name, password="wrong password!!", totp_code="000000"
                    )
                )
            ).code()
        )
    assert (
        answers == [grpc.StatusCode.UNAUTHENTICATED] * 2 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
    )
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
        families = {f.name: f for f in text_string_to_metric_families(reply.read().decode())}
    assert families["lre_identity_lockouts"].samples[0].value == 1
    assert families["lre_identity_authentication_failures"].samples[0].value == 3
    handled = {
        s.labels["grpc_code"]: s.value
        for s in families["grpc_server_handled"].samples
        if s.labels.get("grpc_method") == "CreateSession" and s.name.endswith("_total")
    }
    assert (handled["Unauthenticated"], handled["ResourceExhausted"]) == (2, 2)
    unknown = _error(
        lambda: stub.CreateSession(
            identity_pb2.CreateSessionRequest(
                party=f"parties/{uuid.uuid4()}", password=PASSWORD, totp_code="000000"
            )
        )
    )
    assert (unknown.code(), unknown.details()) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "authentication failed",
    )


def _enroll_and_login(
    stub: identity_pb2_grpc.IdentityServiceStub, codes: EnrolmentCodes, party: str
) -> identity_pb2.Session:
    totp = _enroll(stub, codes, party)
    return stub.CreateSession(
        identity_pb2.CreateSessionRequest(party=party, password=PASSWORD, totp_code=totp.now()),
        timeout=10,
    )


def test_each_proofing_method_yields_a_session_custody_accepts_but_low(
    stub: identity_pb2_grpc.IdentityServiceStub, codes: EnrolmentCodes, channel: grpc.Channel
) -> None:
    by_certificate = create_party(stub, "m-1")
    key, cert = CA.issue(person_subject("Camille", "Dupont"))
    challenge = stub.BeginCertificateProofing(
        identity_pb2.BeginCertificateProofingRequest(party=by_certificate.name)
    )
    record = stub.CompleteCertificateProofing(
        identity_pb2.CompleteCertificateProofingRequest(
            party=by_certificate.name,
            challenge_id=challenge.challenge_id,
            certificate_chain=[cert.public_bytes(serialization.Encoding.DER)],
            signature=key.sign(challenge.challenge, ec.ECDSA(hashes.SHA256())),
        )
    )
    assert record.level == identity_pb2.ASSURANCE_LEVEL_HIGH

    by_eid, by_eid_low = create_party(stub, "m-2"), create_party(stub, "m-3")
    for party, acr, level in (
        (by_eid, "eidas2", identity_pb2.ASSURANCE_LEVEL_SUBSTANTIAL),
        (by_eid_low, "eidas1", identity_pb2.ASSURANCE_LEVEL_LOW),
    ):
        nonce = f"n-{uuid.uuid4()}"
        proofed = stub.ProofWithEidAssertion(
            identity_pb2.ProofWithEidAssertionRequest(
                party=party.name, id_token=BROKER.id_token(nonce, acr=acr), nonce=nonce
            )
        )
        assert proofed.level == level
    refused = _error(
        lambda: stub.ProofWithEidAssertion(
            identity_pb2.ProofWithEidAssertionRequest(
                party=by_eid.name, id_token="not.a.token", nonce="n"
            )
        )
    )
    assert (refused.code(), refused.details()) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "eID assertion refused",
    )

    by_document = create_party(stub, "m-4")
    in_person = stub.RecordDocumentCheck(
        identity_pb2.RecordDocumentCheckRequest(
            party=by_document.name,
            document_type="id-card",
            document_number="X9",
            document_expire_time=expires_in(60),
            operator_id="op",
            person_present=True,
        )
    )
    assert in_person.level == identity_pb2.ASSURANCE_LEVEL_HIGH  # physical presence

    # Custody accepts a deposit from a sender proofed at high (certificate, in
    # person), and refuses one at substantial (eIDAS 24(1a)) or low.
    recipient = stub.CreateParty(
        identity_pb2.CreatePartyRequest(
            request_id="m-5",
            party=identity_pb2.Party(
                kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
                professional=True,
                company_name="Dest SA",
                email="courrier@dest.example",
            ),
        )
    )
    confirm_professional(stub, recipient.name)
    custody = custody_pb2_grpc.CustodyServiceStub(channel)
    for party in (by_certificate, by_document):
        token = _enroll_and_login(stub, codes, party.name).token
        letter = deposit_letter(custody, token, recipient.name, f"dep-{party.name}")
        assert letter.state == common_pb2.LETTER_STATE_DEPOSITED
    for party, why in ((by_eid, "below level high"), (by_eid_low, "below level substantial")):
        token = _enroll_and_login(stub, codes, party.name).token
        with pytest.raises(grpc.RpcError) as refused_sender:
            deposit_letter(custody, token, recipient.name, f"dep-{party.name}")
        assert refused_sender.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert why in (refused_sender.value.details() or "")

    # Personal data: the addressee of letters still in progress may not be
    # erased (the reason in ErrorInfo); a party without letters may; a party
    # gets what the service holds on it as JSON.
    kept = _error(
        lambda: stub.ErasePartyData(
            identity_pb2.ErasePartyDataRequest(party=recipient.name, operator_id="desk-1")
        )
    )
    assert kept.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(kept)[0] == "LETTER_IN_PROGRESS"
    exported = stub.ExportPartyData(identity_pb2.ExportPartyDataRequest(party=by_document.name))
    held = json.loads(exported.data)
    assert exported.content_type == "application/json" and held["format"] == "lre-personal-data/1"
    assert held["party"]["email"] == "camille@example.org" and len(held["letters"]) == 1
    assert [r["method"] for r in held["identityRecords"]] == ["document_check"]
    assert (
        "password" not in exported.data.decode() and "digest_salt" not in held["identityRecords"][0]
    )
    # A refused deposit is a final letter whose proof the sender keeps a year.
    rejected = _error(
        lambda: stub.ErasePartyData(
            identity_pb2.ErasePartyDataRequest(party=by_eid_low.name, operator_id="desk-1")
        )
    )
    assert error_info(rejected)[0] == "EVIDENCE_UNDER_RETENTION"
    unused = create_party(stub, "m-6")
    erased = stub.ErasePartyData(
        identity_pb2.ErasePartyDataRequest(party=unused.name, operator_id="desk-1")
    )
    assert erased.HasField("erase_time") and (erased.email, erased.family_name) == ("", "")
