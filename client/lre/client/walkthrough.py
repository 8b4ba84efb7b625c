"""`lre-client walkthrough`: a registered letter's whole life against a running
service (`make run`), through the public gRPC API only.

It registers and proofs a sender, whose gateway names the recipient (an
operator records the recipient's consent form), deposits a file, reads the
recipient's notification from the local Maildir, checks it with
VerifyNotification; the recipient claims the letter from the notice
(ClaimLetter), has its identity document checked, enrols with the code
e-mailed to it, accepts and downloads the content; the walkthrough then
writes every evidence with its seal, its signed PDF proof and its offline
bundle to a folder, with the commands that verify them (openssl, pdfsig,
lre-verify).
"""

from __future__ import annotations

import email
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lre.client.channels import Connections, bearer
from lre.client.evidence import EvidenceWriter
from lre.client.maildir import maildir_enrolment_codes, notice, plain_text
from lre.client.parties import log_in, proof_and_enroll, register_party
from lre.v1 import (
    custody_pb2,
    custody_pb2_grpc,
    identity_pb2,
    identity_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
    signing_pb2_grpc,
)

CHUNK = 64 * 1024


class Walkthrough:
    """A letter's whole life (``run``), and the steps the mailing's walkthrough
    (``lre.client.mailing``) shares with it."""

    def __init__(self, connections: Connections, maildir: Path, out: Path) -> None:
        # Each side acts through its own portal, as a provider's systems would.
        self.sender_identity = identity_pb2_grpc.IdentityServiceStub(connections.sender_gateway)
        self.recipient_identity = identity_pb2_grpc.IdentityServiceStub(
            connections.recipient_portal
        )
        self.operator_identity = identity_pb2_grpc.IdentityServiceStub(connections.operator)
        self.sender_custody = custody_pb2_grpc.CustodyServiceStub(connections.sender_gateway)
        self.custody = custody_pb2_grpc.CustodyServiceStub(connections.recipient_portal)
        self.operator_custody = custody_pb2_grpc.CustodyServiceStub(connections.operator)
        self.notifications = notification_pb2_grpc.NotificationServiceStub(
            connections.recipient_portal
        )
        self.signing = signing_pb2_grpc.SigningServiceStub(connections.signer)
        self.maildir = maildir
        self.out = out
        self.run_id = uuid.uuid4().hex[:8]

    def say(self, text: str) -> None:
        print(text, flush=True)

    def party(
        self, label: str, portal: identity_pb2_grpc.IdentityServiceStub, **fields: Any
    ) -> tuple[str, str]:
        name, token = register_party(
            portal,
            f"{self.run_id}-{label}",
            self.operator_identity,
            codes=maildir_enrolment_codes(self.maildir),
            **fields,
        )
        self.say(f"  {label}: {name}, proofed at high, two-factor session issued")
        return name, token

    def notification(
        self, reference: str, recipient_email: str, timeout_s: float = 60
    ) -> email.message.Message:
        return notice(self.maildir, reference, recipient_email, timeout_s)

    def accept_and_download(self, letter: str, token: str) -> tuple[custody_pb2.Letter, bytes]:
        """The recipient (``token``) accepts ``letter`` (which then names its
        sender) and downloads its content."""
        accepted = self.custody.AcceptLetter(
            custody_pb2.AcceptLetterRequest(name=letter), metadata=bearer(token)
        )
        content = b"".join(
            chunk.data
            for chunk in self.custody.DownloadLetterContent(
                custody_pb2.DownloadLetterContentRequest(name=letter), metadata=bearer(token)
            )
        )
        return accepted, content

    def write_evidence(self, letter: str, token: str, title: str) -> list[str]:
        """Every evidence of ``letter`` with the commands that verify it, said under ``title``."""
        writer = EvidenceWriter(
            self.sender_custody, self.operator_custody, self.signing, self.out / "evidence"
        )
        commands = writer.write(letter, token)
        self.say(title)
        for command in commands:
            self.say(f"  {command}")
        return commands

    def deposit(self, token: str, recipient: str, document: Path) -> custody_pb2.Letter:
        data = document.read_bytes()

        def messages() -> Iterator[custody_pb2.DepositLetterRequest]:
            yield custody_pb2.DepositLetterRequest(
                envelope=custody_pb2.LetterEnvelope(
                    request_id=f"{self.run_id}-letter",
                    recipient=recipient,
                    parts=[
                        custody_pb2.ContentPart(
                            filename=document.name,
                            media_type="application/octet-stream",
                            size_bytes=len(data),
                        )
                    ],
                )
            )
            for offset in range(0, len(data), CHUNK):
                yield custody_pb2.DepositLetterRequest(
                    chunk=custody_pb2.ContentChunk(part_index=0, data=data[offset : offset + CHUNK])
                )

        return self.sender_custody.DepositLetter(messages(), metadata=bearer(token), timeout=60)

    def run(self, document: Path) -> list[str]:
        self.say("1. The sender registers; its gateway names the recipient")
        sender, sender_token = self.party(
            "sender",
            self.sender_identity,
            kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
            professional=True,
            company_name="Demo Sender SARL",
            email=f"sender-{self.run_id}@example.org",
        )
        recipient_email = f"recipient-{self.run_id}@example.org"
        # The addressee as the sender knows it: names and e-mail, no account yet.
        recipient = self.sender_identity.CreateParty(
            identity_pb2.CreatePartyRequest(
                request_id=f"{self.run_id}-recipient",
                party=identity_pb2.Party(
                    kind=identity_pb2.PARTY_KIND_NATURAL_PERSON,
                    given_name="Camille",
                    family_name="Demo",
                    email=recipient_email,
                ),
            )
        ).name
        self.operator_identity.GrantConsent(
            identity_pb2.GrantConsentRequest(
                request_id=f"{self.run_id}-consent",
                recipient=recipient,
                sender=sender,
                method="signed paper form",
            )
        )
        self.say(
            f"  recipient {recipient}: a consumer; an operator records its signed consent form"
        )
        self.say(f"2. Depositing {document}")
        letter = self.deposit(sender_token, recipient, document)
        self.say(f"  {letter.name}, reference {letter.reference}, proof of deposit sealed")
        self.say(f"3. Waiting for the recipient's notification in {self.maildir}")
        message = self.notification(letter.reference, recipient_email)
        code = re.search(r"Verification code: (\S+)", plain_text(message))
        assert code is not None
        verified = self.notifications.VerifyNotification(
            notification_pb2.VerifyNotificationRequest(
                letter_reference=letter.reference, verification_code=code.group(1)
            )
        )
        self.say(f"  e-mail to {message['To']}, genuine: {verified.genuine}")
        self.say("4. The recipient claims the letter from its notice, is proofed and enrols")
        claim = self.notifications.ClaimLetter(
            notification_pb2.ClaimLetterRequest(
                letter_reference=letter.reference, verification_code=code.group(1)
            )
        )
        enrolled = proof_and_enroll(
            self.recipient_identity,
            claim.recipient,
            f"{self.run_id}-recipient",
            self.operator_identity,
            codes=maildir_enrolment_codes(self.maildir),
        )
        recipient_token = log_in(self.recipient_identity, enrolled)
        self.say(
            f"  claimed {claim.letter} as {claim.recipient}; identity document checked,"
            " two-factor session issued"
        )
        self.say("5. Accepting as the recipient and downloading")
        accepted, content = self.accept_and_download(claim.letter, recipient_token)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / document.name).write_bytes(content)
        same = content == document.read_bytes()
        self.say(f"  sender revealed: {accepted.sender}; content identical: {same}")
        self.say(
            f"6. Writing every evidence, its seal, its PDF proof and its bundle"
            f" to {self.out / 'evidence'}"
        )
        return self.write_evidence(letter.name, sender_token, "Verify them with:")
