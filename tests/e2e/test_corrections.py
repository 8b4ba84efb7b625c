"""A misspelt addressee, corrected: real processes (signer, server, outbox
delivering to a Maildir, an eID broker's tokens). The sender's gateway typed
"Dupond"; the addressee's eID says "Dupont", so binding it is refused (and
journaled); an operator corrects the name on that basis; the same eID then
binds, the addressee accepts, and the proofs made after the correction name
the right spelling and mention the correction, which is itself sealed.
`verify-log` passes over the whole history (the proof of deposit still names
"Dupond")."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import grpc
import pyotp
import pytest

from lre.client.parties import enroll_party, log_in
from lre.v1 import (
    custody_pb2,
    custody_pb2_grpc,
    identity_pb2,
    identity_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
)
from tests.support.clients import bearer, deposit_letter
from tests.support.mail import notice_in
from tests.support.pki import openssl
from tests.support.processes import BIN
from tests.support.proofing import eid_broker_settings, proof_with_eid
from tests.support.server import ServerProcess, server_process
from tests.support.signer import SignerProcess

EMAIL = "camille.dupont@example.org"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def server(signer_process: SignerProcess, tmp_path: Path) -> Iterator[ServerProcess]:
    with server_process(
        signer_process,
        tmp_path,
        f"sqlite:///{tmp_path / 'lre.db'}",
        **eid_broker_settings(tmp_path),
        outbox_interval_s="0.2",
    ) as s:
        yield s


def _eid(identity: identity_pb2_grpc.IdentityServiceStub, party: str) -> None:
    proof_with_eid(identity, party, given_name="Camille", family_name="DUPONT")


def test_a_misspelt_addressee_corrected_then_claims_with_its_eid_and_accepts(
    server: ServerProcess, signer_process: SignerProcess, tmp_path: Path
) -> None:
    with grpc.insecure_channel(server.address) as channel:
        identity = identity_pb2_grpc.IdentityServiceStub(channel)
        custody = custody_pb2_grpc.CustodyServiceStub(channel)
        notifications = notification_pb2_grpc.NotificationServiceStub(channel)
        sender = enroll_party(
            identity,
            "sender",
            codes=server.enrolment_codes,
            kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
            company_name="Bailleur SARL",
            email="gestion@bailleur.example",
        )
        addressee = identity.CreateParty(
            identity_pb2.CreatePartyRequest(
                request_id="addressee",
                party=identity_pb2.Party(
                    kind=identity_pb2.PARTY_KIND_NATURAL_PERSON,
                    given_name="Camille",
                    family_name="Dupond",  # the gateway's typo
                    email=EMAIL,
                ),
            )
        )
        identity.GrantConsent(
            identity_pb2.GrantConsentRequest(
                request_id="paper", recipient=addressee.name, sender=sender.name, method="form"
            )
        )
        sender_token = log_in(identity, sender)
        letter = deposit_letter(custody, sender_token, addressee.name, "letter-1").name
        reference, code = notice_in(server.maildir, EMAIL)
        claim = notifications.ClaimLetter(
            notification_pb2.ClaimLetterRequest(letter_reference=reference, verification_code=code)
        )

        # The real eID does not bind to the misspelt party.
        with pytest.raises(grpc.RpcError) as mismatch:
            _eid(identity, claim.recipient)
        assert mismatch.value.code() == grpc.StatusCode.FAILED_PRECONDITION

        # An operator corrects the name on what the addressee presented.
        corrected = identity.CorrectParty(
            identity_pb2.CorrectPartyRequest(
                party=claim.recipient,
                given_name="Camille",
                family_name="Dupont",
                basis="eID claims presented with the notice code; proofing refused as a mismatch",
                operator_id="desk-5",
            )
        )
        document = json.loads(corrected.document)
        assert document["before"]["familyName"] == "Dupond"
        assert document["after"]["familyName"] == "Dupont"
        assert document["operatorId"] == "desk-5"
        (tmp_path / "correction.p7m").write_bytes(corrected.seal)
        checked = openssl(
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            tmp_path / "correction.p7m",
            "-CAfile",
            signer_process.root_ca,
        )
        assert checked.returncode == 0 and checked.stdout.encode() == corrected.document
        (listed,) = identity.ListPartyCorrections(
            identity_pb2.ListPartyCorrectionsRequest(party=claim.recipient)
        ).corrections
        assert listed.name == corrected.name
        # The same correction twice changes nothing.
        with pytest.raises(grpc.RpcError) as again:
            identity.CorrectParty(
                identity_pb2.CorrectPartyRequest(
                    party=claim.recipient,
                    given_name="Camille",
                    family_name="Dupont",
                    basis="again",
                    operator_id="desk-5",
                )
            )
        assert again.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        # Now the eID binds; the addressee enrols and accepts.
        _eid(identity, claim.recipient)
        uri = identity.EnrollCredentials(
            identity_pb2.EnrollCredentialsRequest(
                party=claim.recipient,
                enrolment_code=server.enrolment_codes(claim.recipient),
                password=PASSWORD,
            )
        ).provisioning_uri
        totp = pyotp.TOTP(urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0])
        token = identity.CreateSession(
            identity_pb2.CreateSessionRequest(
                party=claim.recipient, password=PASSWORD, totp_code=totp.now()
            )
        ).token
        custody.AcceptLetter(
            custody_pb2.AcceptLetterRequest(name=claim.letter), metadata=bearer(token)
        )

        evidence = custody.ListEvidence(
            custody_pb2.ListEvidenceRequest(parent=letter), metadata=bearer(sender_token)
        ).evidence
        by_event = {json.loads(e.document)["event"].rsplit("/", 1)[1]: e for e in evidence}
        deposit = json.loads(by_event["SubmissionAcceptance"].document)["recipient"]
        assert deposit["name"] == "Camille Dupond" and "nameCorrection" not in deposit
        acceptance = json.loads(by_event["ConsignmentAcceptance"].document)["recipient"]
        assert acceptance["name"] == "Camille DUPONT"  # as the eID writes it
        assert acceptance["nameCorrection"]["correction"] == corrected.name
        pdf = custody.GetEvidenceProof(
            custody_pb2.GetEvidenceProofRequest(name=by_event["ConsignmentAcceptance"].name),
            metadata=bearer(sender_token),
        ).pdf
        (tmp_path / "acceptance.pdf").write_bytes(pdf)
        text = subprocess.run(
            ["pdftotext", str(tmp_path / "acceptance.pdf"), "-"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        assert "Camille DUPONT" in text and "Name corrected on" in " ".join(text.split())

    checked_log = subprocess.run(
        [str(BIN / "lre-server"), "verify-log"],
        env={
            **os.environ,
            "LRE_SERVER_DATABASE_URL": f"sqlite:///{tmp_path / 'lre.db'}",
            "LRE_SERVER_SEAL_TRUST_ANCHORS_FILE": str(signer_process.root_ca),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked_log.returncode == 0, checked_log.stdout + checked_log.stderr
    assert "PROBLEM" not in checked_log.stdout


def test_a_sender_corrects_its_own_addressee_until_the_notice_goes(
    signer_process: SignerProcess, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'lre.db'}"
    wanted = identity_pb2.CorrectPartyRequest(
        given_name="Camille", family_name="Dupont", basis="typed Dupond; the lease says Dupont"
    )
    # No workers: the notice waits in the outbox.
    with (
        server_process(signer_process, tmp_path, database, run_workers="false") as quiet,
        grpc.insecure_channel(quiet.address) as channel,
    ):
        identity = identity_pb2_grpc.IdentityServiceStub(channel)
        custody = custody_pb2_grpc.CustodyServiceStub(channel)
        sender = enroll_party(
            identity,
            "sender",
            codes=quiet.enrolment_codes,
            kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
            company_name="Bailleur SARL",
            email="gestion@bailleur.example",
        )
        stranger = enroll_party(
            identity,
            "stranger",
            codes=quiet.enrolment_codes,
            kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
            company_name="Autre SAS",
            email="autre@autre.example",
        )
        addressee = identity.CreateParty(
            identity_pb2.CreatePartyRequest(
                request_id="addressee",
                party=identity_pb2.Party(
                    kind=identity_pb2.PARTY_KIND_NATURAL_PERSON,
                    given_name="Camille",
                    family_name="Dupond",
                    email=EMAIL,
                ),
            )
        )
        identity.GrantConsent(
            identity_pb2.GrantConsentRequest(
                request_id="paper", recipient=addressee.name, sender=sender.name, method="form"
            )
        )
        sender_token = log_in(identity, sender)
        letter = deposit_letter(custody, sender_token, addressee.name, "letter-1").name
        wanted.party = addressee.name

        # Another sender has not written to this addressee: not its to correct.
        with pytest.raises(grpc.RpcError) as foreign:
            identity.CorrectParty(wanted, metadata=bearer(log_in(identity, stranger)))
        assert foreign.value.code() == grpc.StatusCode.NOT_FOUND
        fixed = identity.CorrectParty(wanted, metadata=bearer(sender_token))
        assert json.loads(fixed.document)["operatorId"] == sender.name

    with (
        server_process(signer_process, tmp_path, database, outbox_interval_s="0.2") as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        identity = identity_pb2_grpc.IdentityServiceStub(channel)
        custody = custody_pb2_grpc.CustodyServiceStub(channel)
        notice_in(server.maildir, EMAIL)
        # Notified: now only an operator corrects it, on what the person presents.
        wanted.family_name = "Dupontel"
        with pytest.raises(grpc.RpcError) as late:
            identity.CorrectParty(wanted, metadata=bearer(sender_token))
        assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        evidence = custody.ListEvidence(
            custody_pb2.ListEvidenceRequest(parent=letter),
            metadata=bearer(sender_token),  # the session opened before the restart
        ).evidence
        (notice,) = [
            json.loads(e.document)["recipient"]
            for e in evidence
            if json.loads(e.document)["event"].endswith("/NotificationForAcceptance")
        ]
        assert notice["name"] == "Camille Dupont"
        assert notice["nameCorrection"]["correction"] == fixed.name

    checked = subprocess.run(
        [str(BIN / "lre-server"), "verify-log"],
        env={
            **os.environ,
            "LRE_SERVER_DATABASE_URL": database,
            "LRE_SERVER_SEAL_TRUST_ANCHORS_FILE": str(signer_process.root_ca),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
