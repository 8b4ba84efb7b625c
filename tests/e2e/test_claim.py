"""A first-time recipient, from its notice e-mail alone.

Real processes (signer, server, outbox delivering to a Maildir). The
recipient's side of this test uses only what the recipient holds: its own
mailbox and its own eID; every id it passes comes from the notice or from an
answer of the public API."""

from __future__ import annotations

import email
import json
import mailbox
import re
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import grpc
import pyotp
import pytest

from lre.client.maildir import plain_text
from lre.client.parties import enroll_party, log_in
from lre.server.domain.evidence import LOA_URIS
from lre.server.domain.identity import AssuranceLevel
from lre.v1 import (
    custody_pb2,
    custody_pb2_grpc,
    identity_pb2,
    identity_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
)
from tests.support.clients import bearer, deposit_letter
from tests.support.proofing import eid_broker_settings, proof_with_eid
from tests.support.server import ServerProcess, server_process
from tests.support.signer import SignerProcess

RECIPIENT_EMAIL = "camille.dupont@example.org"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def server(signer_process: SignerProcess, tmp_path: Path) -> Iterator[ServerProcess]:
    database = f"sqlite:///{tmp_path / 'lre.db'}"
    with server_process(
        signer_process,
        tmp_path,
        database,
        **eid_broker_settings(tmp_path),
        outbox_interval_s="0.2",
    ) as s:
        yield s


def _notice(maildir: Path, to: str, timeout_s: float = 30) -> tuple[str, str]:
    """Reference and verification code, as the addressee reads them in its mailbox."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (maildir / "new").exists():
            for message in mailbox.Maildir(maildir, create=False):
                text = plain_text(email.message_from_bytes(message.as_bytes()))
                found = re.search(r"Reference: (\S+)\s+Verification code: (\S+)", text)
                if message["To"] == to and found:
                    return found.group(1), found.group(2)
        time.sleep(0.2)
    raise AssertionError(f"no notice to {to} in {maildir}")


def _sender_and_letter(server: ServerProcess, channel: grpc.Channel) -> tuple[str, str]:
    """The sender's side: a gateway that registers the addressee (names and
    e-mail as the sender knows them), an operator recording the addressee's
    paper consent, a deposit. Nothing of it is handed to the recipient's
    side; the sender's session and letter come back for reading the proofs."""
    identity = identity_pb2_grpc.IdentityServiceStub(channel)
    sender = enroll_party(
        identity,
        "sender",
        codes=server.enrolment_codes,
        kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
        professional=True,
        company_name="Bailleur SARL",
        email="gestion@bailleur.example",
    )
    addressee = identity.CreateParty(
        identity_pb2.CreatePartyRequest(
            request_id="addressee",
            party=identity_pb2.Party(
                kind=identity_pb2.PARTY_KIND_NATURAL_PERSON,
                given_name="Camille",
                family_name="Dupont",
                email=RECIPIENT_EMAIL,
            ),
        )
    )
    identity.GrantConsent(  # an operator, from the consent form the addressee signed
        identity_pb2.GrantConsentRequest(
            request_id="paper-consent",
            recipient=addressee.name,
            sender=sender.name,
            method="signed paper form",
        )
    )
    token = log_in(identity, sender)
    letter = deposit_letter(
        custody_pb2_grpc.CustodyServiceStub(channel), token, addressee.name, "letter-1"
    )
    return token, letter.name


def test_a_first_time_recipient_claims_proofs_and_accepts_from_the_notice(
    server: ServerProcess,
) -> None:
    with grpc.insecure_channel(server.address) as channel:
        sender_token, sent = _sender_and_letter(server, channel)

        # -- the recipient: its mailbox, the portal, its eID ------------------
        notifications = notification_pb2_grpc.NotificationServiceStub(channel)
        identity = identity_pb2_grpc.IdentityServiceStub(channel)
        custody = custody_pb2_grpc.CustodyServiceStub(channel)
        reference, code = _notice(server.maildir, RECIPIENT_EMAIL)

        with pytest.raises(grpc.RpcError) as wrong:
            notifications.ClaimLetter(
                notification_pb2.ClaimLetterRequest(
                    letter_reference=reference, verification_code="AAAAA-AAAAA"
                )
            )
        assert wrong.value.code() == grpc.StatusCode.NOT_FOUND

        claim = notifications.ClaimLetter(
            notification_pb2.ClaimLetterRequest(letter_reference=reference, verification_code=code)
        )
        assert claim.letter.startswith("letters/") and claim.recipient.startswith("parties/")
        assert not claim.enrolled
        # The claim names no sender: it has no field for one.
        assert {f.name for f in notification_pb2.LetterClaim.DESCRIPTOR.fields} == {
            "letter",
            "recipient",
            "acceptance_deadline",
            "enrolled",
        }

        # Someone else's eID (the mailbox is not the person): refused, with the reason.
        with pytest.raises(grpc.RpcError) as mismatch:
            proof_with_eid(identity, claim.recipient, given_name="Mallory", family_name="Martin")
        assert mismatch.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "family_name is not the party's" in (mismatch.value.details() or "")

        # The addressee's own eID (written as the registry writes it), level substantial.
        proof_with_eid(identity, claim.recipient, given_name="CAMILLE", family_name="DUPONT")
        uri = identity.EnrollCredentials(
            identity_pb2.EnrollCredentialsRequest(
                party=claim.recipient,
                enrolment_code=server.enrolment_codes(claim.recipient),  # from its mailbox
                password=PASSWORD,
            )
        ).provisioning_uri
        totp = pyotp.TOTP(urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0])
        token = identity.CreateSession(
            identity_pb2.CreateSessionRequest(
                party=claim.recipient, password=PASSWORD, totp_code=totp.now()
            )
        ).token

        before = custody.GetLetter(
            custody_pb2.GetLetterRequest(name=claim.letter), metadata=bearer(token)
        )
        assert before.sender == ""  # R53-3 I: not before acceptance
        accepted = custody.AcceptLetter(
            custody_pb2.AcceptLetterRequest(name=claim.letter), metadata=bearer(token)
        )
        assert accepted.sender  # now disclosed
        content = b"".join(
            c.data
            for c in custody.DownloadLetterContent(
                custody_pb2.DownloadLetterContentRequest(name=claim.letter),
                metadata=bearer(token),
            )
        )
        assert content

        # The proofs of acceptance and handover (the sender's to read) say how
        # the recipient was identified and authenticated; the name is the one
        # the eID verified.
        assert sent == claim.letter
        evidence = custody.ListEvidence(
            custody_pb2.ListEvidenceRequest(parent=sent), metadata=bearer(sender_token)
        ).evidence
        documents = [json.loads(e.document) for e in evidence]
        decided = [d for d in documents if "authentication" in d["recipient"]]
        assert len(decided) == 2  # ConsignmentAcceptance and ContentHandover
        for document in decided:
            recipient = dict(document["recipient"])
            auth = recipient.pop("authentication")
            assert auth["level"] == LOA_URIS[AssuranceLevel.SUBSTANTIAL]
            assert auth["method"] == ["knowledge", "possession", "otp"]
            assert auth["time"].endswith("Z")
            assert recipient == {
                "id": claim.recipient,
                "name": "CAMILLE DUPONT",
                "email": RECIPIENT_EMAIL,
            }

        # Claiming again: the addressee now signs in.
        again = notifications.ClaimLetter(
            notification_pb2.ClaimLetterRequest(letter_reference=reference, verification_code=code)
        )
        assert again.enrolled and again.recipient == claim.recipient
