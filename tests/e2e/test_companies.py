"""Companies through the real server and signer, on SQLite and PostgreSQL:
registered by their SIREN or SIRET (a wrong check digit refused, La Poste's
SIRETs by their own rule), named by it in the evidence and the PDF proof with
the person who acted for the sender, and professional (no consent needed)
only on an operator's recorded decision, never on the gateway's word."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from lre.client.mailing import mailing_requests
from lre.client.parties import EnrolmentCodes, register_party
from lre.v1 import common_pb2, custody_pb2, custody_pb2_grpc, identity_pb2, identity_pb2_grpc
from tests.support.clients import bearer
from tests.support.pki import verify_seal
from tests.support.processes import BIN
from tests.support.server import ServerProcess, server_process
from tests.support.signer import SignerProcess

LA_POSTE_SIRET = "35600000049837"  # fails Luhn; its digits sum to a multiple of 5


@pytest.fixture
def served(
    database_url: str, signer_process: SignerProcess, tmp_path: Path
) -> Iterator[ServerProcess]:
    with server_process(signer_process, tmp_path, database_url, run_workers="false") as process:
        yield process


def _refusal(call: pytest.ExceptionInfo[grpc.RpcError]) -> tuple[grpc.StatusCode, set[str]]:
    """The status code, and the fields (BadRequest) and reasons (ErrorInfo) it names."""
    status = rpc_status.from_call(call.value)
    assert status is not None
    named = set()
    for detail in status.details:
        bad, info = error_details_pb2.BadRequest(), error_details_pb2.ErrorInfo()
        if detail.Unpack(bad):
            named |= {v.field for v in bad.field_violations}
        if detail.Unpack(info):
            named.add(info.reason)
    return call.value.code(), named


def _deposit(
    custody: custody_pb2_grpc.CustodyServiceStub,
    token: str,
    recipient: str,
    request_id: str,
    delegate: common_pb2.Delegate | None = None,
) -> custody_pb2.Letter:
    content = b"%PDF-1.7 mise en demeure\n" * 200
    envelope = custody_pb2.LetterEnvelope(
        request_id=request_id,
        recipient=recipient,
        parts=[
            custody_pb2.ContentPart(
                filename="lettre.pdf", media_type="application/pdf", size_bytes=len(content)
            )
        ],
        sender_delegate=delegate,
    )
    return custody.DepositLetter(
        iter(
            [
                custody_pb2.DepositLetterRequest(envelope=envelope),
                custody_pb2.DepositLetterRequest(
                    chunk=custody_pb2.ContentChunk(part_index=0, data=content)
                ),
            ]
        ),
        metadata=bearer(token),
        timeout=30,
    )


def test_a_company_by_its_siren_its_delegate_in_the_proof_and_no_exemption_on_a_gateways_word(
    served: ServerProcess, database_url: str, signer_process: SignerProcess, tmp_path: Path
) -> None:
    codes: EnrolmentCodes = served.enrolment_codes
    with grpc.insecure_channel(served.address) as channel:
        identity = identity_pb2_grpc.IdentityServiceStub(channel)
        custody = custody_pb2_grpc.CustodyServiceStub(channel)

        # A SIREN with a wrong check digit: refused, naming the field.
        with pytest.raises(grpc.RpcError) as wrong:
            identity.CreateParty(
                identity_pb2.CreatePartyRequest(
                    request_id="wrong",
                    party=identity_pb2.Party(
                        kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
                        company_name="Bailleur SARL",
                        email="gestion@bailleur.example",
                        registration_id="552100555",
                    ),
                )
            )
        code, named = _refusal(wrong)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "party.registration_id" in named

        sender, sender_token = register_party(
            identity,
            "sender",
            codes=codes,
            kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
            company_name="Bailleur SARL",
            email="gestion@bailleur.example",
            registration_id="552 100 554",
        )
        # The gateway says the addressee is a professional: a claim only.
        claimed = identity.CreateParty(
            identity_pb2.CreatePartyRequest(
                request_id="la-poste",
                party=identity_pb2.Party(
                    kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
                    professional=True,
                    company_name="La Poste",
                    email="courrier@laposte.example",
                    registration_id=LA_POSTE_SIRET,
                ),
            )
        )
        assert claimed.registration_id == f"NTRFR-{LA_POSTE_SIRET}"
        assert claimed.professional_claimed and not claimed.professional
        with pytest.raises(grpc.RpcError) as refused:
            _deposit(custody, sender_token, claimed.name, "l-1")
        code, named = _refusal(refused)
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "CONSENT_MISSING" in named

        # An operator decides on documents: now no consent is needed.
        decided = identity.SetProfessionalStatus(
            identity_pb2.SetProfessionalStatusRequest(
                party=claimed.name,
                professional=True,
                basis="Kbis extract of 2026-11-02",
                operator_id="desk-3",
            )
        )
        assert decided.professional
        assert decided.professional_basis == identity_pb2.PROFESSIONAL_BASIS_OPERATOR
        delegate = common_pb2.Delegate(given_name="Hélène", family_name="Martin", role="gérante")
        letter = _deposit(custody, sender_token, claimed.name, "l-2", delegate)
        assert letter.state == common_pb2.LETTER_STATE_DEPOSITED

        (proof,) = custody.ListEvidence(
            custody_pb2.ListEvidenceRequest(parent=letter.name), metadata=bearer(sender_token)
        ).evidence
        document = verify_seal(proof, signer_process, tmp_path)
        assert document["sender"]["registrationId"] == "NTRFR-552100554"
        assert document["sender"]["delegate"] == {
            "givenName": "Hélène",
            "familyName": "Martin",
            "role": "gérante",
        }
        assert document["recipient"]["registrationId"] == f"NTRFR-{LA_POSTE_SIRET}"
        assert "delegate" not in document["recipient"]
        pdf = custody.GetEvidenceProof(
            custody_pb2.GetEvidenceProofRequest(name=proof.name), metadata=bearer(sender_token)
        ).pdf
        (tmp_path / "proof.pdf").write_bytes(pdf)
        text = " ".join(
            subprocess.run(
                ["pdftotext", str(tmp_path / "proof.pdf"), "-"],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            ).stdout.split()
        )
        assert "NTRFR-552100554" in text and f"NTRFR-{LA_POSTE_SIRET}" in text
        assert "Hélène Martin (gérante)" in text

        # A mailing names the delegate in each letter's proof of deposit too.
        requests = list(
            mailing_requests(
                "m-1",
                "AG 2027",
                [(claimed.name, "lot 1")],
                [("convocation.pdf", "application/pdf", b"%PDF-1.7 AG\n" * 50)],
            )
        )
        requests[0].envelope.sender_delegate.CopyFrom(delegate)
        mailing = custody.DepositMailing(iter(requests), metadata=bearer(sender_token), timeout=60)
        (sent,) = mailing.recipients
        (mailed,) = custody.ListEvidence(
            custody_pb2.ListEvidenceRequest(parent=sent.letter), metadata=bearer(sender_token)
        ).evidence
        assert json.loads(mailed.document)["sender"]["delegate"]["familyName"] == "Martin"

        # A delegate without a name is refused before anything is read.
        with pytest.raises(grpc.RpcError) as nameless:
            _deposit(custody, sender_token, claimed.name, "l-3", common_pb2.Delegate(role="x"))
        code, named = _refusal(nameless)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "envelope.sender_delegate" in named
        assert json.loads(proof.document)["sender"]["id"] == sender

    # The log, registration identifiers and delegates included, verifies.
    checked = subprocess.run(
        [str(BIN / "lre-server"), "verify-log"],
        env={
            **os.environ,
            "LRE_SERVER_DATABASE_URL": database_url,
            "LRE_SERVER_SEAL_TRUST_ANCHORS_FILE": str(signer_process.root_ca),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "PROBLEM" not in checked.stdout
