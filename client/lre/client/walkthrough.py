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

`lre-client mailing`: one document to several recipients in one deposit,
some refused (no consent, no such party), the others each with a letter of
their own; one recipient accepts and downloads; the mailing's progress and its
CSV report.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import email
import email.header
import mailbox
import re
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pyotp
from cryptography import x509
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import serialization
from google.protobuf import timestamp_pb2

from lre.client import health
from lre.dev.tls import TlsFiles
from lre.runtime import structures
from lre.runtime.tls import channel_credentials
from lre.v1 import (
    common_pb2,
    custody_pb2,
    custody_pb2_grpc,
    identity_pb2,
    identity_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
    signing_pb2,
    signing_pb2_grpc,
)

CHUNK = 64 * 1024


@dataclass(frozen=True)
class Connections:
    """The server as each caller reaches it (one channel for all without TLS)."""

    sender_gateway: grpc.Channel
    recipient_portal: grpc.Channel
    operator: grpc.Channel
    signer: grpc.Channel


@contextlib.contextmanager
def connect(server: str, signer: str, tls_dir: Path | None) -> Iterator[Connections]:
    """Mutual TLS with the development certificates of ``tls_dir`` when given."""
    if tls_dir is None:
        with grpc.insecure_channel(server) as plain, grpc.insecure_channel(signer) as to_signer:
            yield Connections(plain, plain, plain, to_signer)
        return
    files = TlsFiles(tls_dir)

    def secure(address: str, caller: str) -> grpc.Channel:
        return grpc.secure_channel(
            address,
            channel_credentials(files.ca, files.client_cert(caller), files.client_key(caller)),
        )

    with (
        secure(server, "sender-gateway") as sender,
        secure(server, "recipient-portal") as recipient,
        secure(server, "operator") as operator,
        secure(signer, "operator") as to_signer,
    ):
        yield Connections(sender, recipient, operator, to_signer)


class Walkthrough:
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
        self.say(f"  {label}: {name}, proofed at substantial, two-factor session issued")
        return name, token

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

        return self.sender_custody.DepositLetter(messages(), metadata=_bearer(token), timeout=60)

    def notification(
        self, reference: str, recipient_email: str, timeout_s: float = 60
    ) -> email.message.Message:
        """The recipient's notice (the sender's proof of deposit names the reference too)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (self.maildir / "new").exists():
                box = mailbox.Maildir(self.maildir, create=False)
                for key in list(box.iterkeys()):
                    message = email.message_from_bytes(box.get_bytes(key))
                    subject = email.header.make_header(
                        email.header.decode_header(message["Subject"])
                    )
                    if reference in str(subject) and message["To"] == recipient_email:
                        return message
            time.sleep(0.5)
        raise SystemExit(
            f"no notification for {reference} in {self.maildir} after {timeout_s:.0f} s"
        )

    def write_evidence(self, letter: str, token: str) -> list[str]:
        """Every evidence of ``letter`` as the sender reads it: the JSON and its
        CAdES seal (with the seal's signature and timestamp token apart, for
        `openssl ts`), the signed PDF proof and the offline bundle; returns the
        commands that verify each of them."""
        folder = self.out / "evidence"
        folder.mkdir(parents=True, exist_ok=True)
        chain = self.signing.GetCertificateChain(
            signing_pb2.GetCertificateChainRequest(purpose=signing_pb2.KEY_PURPOSE_TIMESTAMPING)
        ).certificates
        root = folder / "root-ca.pem"
        root.write_bytes(
            x509.load_der_x509_certificate(chain[-1]).public_bytes(serialization.Encoding.PEM)
        )
        tsa = folder / "tsa.pem"
        tsa.write_bytes(
            x509.load_der_x509_certificate(chain[0]).public_bytes(serialization.Encoding.PEM)
        )
        # What the provider publishes beside its root: whose seals and
        # timestamps a bundle must carry (the root certifies others too).
        seal = self.signing.GetCertificateChain(
            signing_pb2.GetCertificateChainRequest(purpose=signing_pb2.KEY_PURPOSE_SEAL)
        ).certificates[0]
        provider = folder / "provider-certificates.pem"
        provider.write_bytes(
            x509.load_der_x509_certificate(seal).public_bytes(serialization.Encoding.PEM)
            + tsa.read_bytes()
        )
        commands = []
        evidence = self.sender_custody.ListEvidence(
            custody_pb2.ListEvidenceRequest(parent=letter), metadata=_bearer(token)
        )
        # A bundle proves the evidence is in the log: it needs a sealed tree
        # head that contains it (sealed every minute; here, at once).
        self.operator_custody.SealTreeHead(custody_pb2.SealTreeHeadRequest())
        for number, item in enumerate(evidence.evidence, start=1):
            event = (
                common_pb2.EvidenceEvent.Name(item.event).removeprefix("EVIDENCE_EVENT_").lower()
            )
            stem = folder / f"{number}-{event}"
            stem.with_suffix(".json").write_bytes(item.document)
            stem.with_suffix(".p7m").write_bytes(item.seal)
            signature, token_der = _signature_and_timestamp(item.seal)
            stem.with_suffix(".sig").write_bytes(signature)
            stem.with_suffix(".tst").write_bytes(token_der)
            stem.with_suffix(".pdf").write_bytes(
                self.sender_custody.GetEvidenceProof(
                    custody_pb2.GetEvidenceProofRequest(name=item.name),
                    metadata=_bearer(token),
                    timeout=60,
                ).pdf
            )
            stem.with_suffix(".zip").write_bytes(self.bundle(item.name, token))
            commands.append(
                f"openssl cms -verify -inform DER -in {stem}.p7m -CAfile {root} -out /dev/null"
            )
            commands.append(
                f"openssl ts -verify -data {stem}.sig -in {stem}.tst -token_in"
                f" -CAfile {root} -untrusted {tsa}"
            )
            commands.append(f"pdfsig {stem}.pdf")
            commands.append(f"lre-verify {stem}.zip --trust {root} --provider {provider}")
        return commands

    def bundle(self, evidence: str, token: str, timeout_s: float = 60) -> bytes:
        """The evidence's offline bundle, once the log's sequencer has put it
        under the tree head just sealed (it numbers entries every 0.2 s)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return b"".join(
                    chunk.data
                    for chunk in self.sender_custody.GetEvidenceBundle(
                        custody_pb2.GetEvidenceBundleRequest(name=evidence),
                        metadata=_bearer(token),
                        timeout=60,
                    )
                )
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.5)
            self.operator_custody.SealTreeHead(custody_pb2.SealTreeHeadRequest())

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
        text = next(
            p.get_payload(decode=True)
            for p in message.walk()
            if p.get_content_type() == "text/plain"
        )
        code = re.search(rb"Verification code: (\S+)", text)  # type: ignore[arg-type]
        assert code is not None
        verified = self.notifications.VerifyNotification(
            notification_pb2.VerifyNotificationRequest(
                letter_reference=letter.reference, verification_code=code.group(1).decode()
            )
        )
        self.say(f"  e-mail to {message['To']}, genuine: {verified.genuine}")
        self.say("4. The recipient claims the letter from its notice, is proofed and enrols")
        claim = self.notifications.ClaimLetter(
            notification_pb2.ClaimLetterRequest(
                letter_reference=letter.reference, verification_code=code.group(1).decode()
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
        accepted = self.custody.AcceptLetter(
            custody_pb2.AcceptLetterRequest(name=claim.letter), metadata=_bearer(recipient_token)
        )
        content = b"".join(
            chunk.data
            for chunk in self.custody.DownloadLetterContent(
                custody_pb2.DownloadLetterContentRequest(name=claim.letter),
                metadata=_bearer(recipient_token),
            )
        )
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / document.name).write_bytes(content)
        same = content == document.read_bytes()
        self.say(f"  sender revealed: {accepted.sender}; content identical: {same}")
        self.say(
            f"6. Writing every evidence, its seal, its PDF proof and its bundle"
            f" to {self.out / 'evidence'}"
        )
        commands = self.write_evidence(letter.name, sender_token)
        self.say("Verify them with:")
        for command in commands:
            self.say(f"  {command}")
        return commands


# Reads the enrolment code e-mailed to a party ("parties/{id}") after proofing.
EnrolmentCodes = Callable[[str], str]


def _text(message: email.message.Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode(part.get_content_charset() or "utf-8", "replace")
    return ""


def enrolment_code_in(message: email.message.Message, party: str) -> str | None:
    """The enrolment code in ``message`` if it is the one sent to ``party``."""
    pattern = rf"Account: {re.escape(party)}\s+Enrolment code: ([A-Z0-9-]+)"
    found = re.search(pattern, _text(message))
    return found.group(1) if found else None


def maildir_enrolment_codes(maildir: Path, timeout_s: float = 60) -> EnrolmentCodes:
    """Enrolment codes as the party reads them, in ``maildir`` (where `make
    run` delivers mail): the newest e-mail naming its account, deleted once
    read (the code is good once)."""

    def code(party: str) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (maildir / "new").exists():
                box = mailbox.Maildir(maildir, create=False)
                found = []
                for key in list(box.iterkeys()):
                    message = box.get_message(key)
                    found_code = enrolment_code_in(message, party)
                    if found_code:
                        found.append((message.get_date(), found_code, key))
                if found:
                    _, newest, _ = max(found)
                    for *_, key in found:
                        box.remove(key)
                    return newest
            time.sleep(0.2)
        raise SystemExit(f"no enrolment code for {party} in {maildir} after {timeout_s:.0f} s")

    return code


class MailingWalkthrough(Walkthrough):
    def run(self, document: Path) -> list[str]:
        self.say("1. Registering and proofing a property manager and three co-owners")
        sender, sender_token = self.party(
            "syndic",
            self.sender_identity,
            kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
            professional=True,
            company_name="Demo Syndic SARL",
            email=f"syndic-{self.run_id}@example.org",
        )
        owners = []
        for label in ("owner-a", "owner-b", "owner-c"):
            owners.append(
                self.party(
                    label,
                    self.recipient_identity,
                    kind=identity_pb2.PARTY_KIND_NATURAL_PERSON,
                    given_name="Co-owner",
                    family_name=label,
                    email=f"{label}-{self.run_id}@example.org",
                )
            )
        for i, (owner, owner_token) in enumerate(owners[:2]):
            self.recipient_identity.GrantConsent(
                identity_pb2.GrantConsentRequest(
                    request_id=f"{self.run_id}-consent-{i}",
                    recipient=owner,
                    sender=sender,
                    method="walkthrough",
                ),
                metadata=_bearer(owner_token),  # consent is the recipient's own
            )
        self.say("  owners a and b consent; owner c does not")
        recipients = [(owner, f"lot {i + 1}") for i, (owner, _) in enumerate(owners)]
        recipients.append((f"parties/{uuid.uuid4()}", "lot 4"))
        self.say(f"2. Depositing {document} once for {len(recipients)} recipients")
        data = document.read_bytes()
        mailing = self.sender_custody.DepositMailing(
            mailing_requests(
                f"{self.run_id}-mailing",
                "general assembly",
                recipients,
                [(document.name, "application/octet-stream", data)],
            ),
            metadata=_bearer(sender_token),
            timeout=120,
        )
        self.say(
            f"  {mailing.name}: {mailing.letter_count} letters,"
            f" {mailing.refused_count} refused {dict(mailing.refusals)}"
        )
        for r in mailing.recipients:
            outcome = r.letter or f"refused ({r.refusal.reason_code}, rejection sealed)"
            self.say(f"  {r.letter_reference}: {outcome}")
        first = mailing.recipients[0].letter
        letter = self.sender_custody.GetLetter(
            custody_pb2.GetLetterRequest(name=first), metadata=_bearer(sender_token)
        )
        self.say("3. Waiting for the notices")
        self.notification(letter.reference, f"owner-a-{self.run_id}@example.org")
        self.say("4. Owner a accepts and downloads")
        owner_token = owners[0][1]
        self.custody.AcceptLetter(
            custody_pb2.AcceptLetterRequest(name=first), metadata=_bearer(owner_token)
        )
        content = b"".join(
            chunk.data
            for chunk in self.custody.DownloadLetterContent(
                custody_pb2.DownloadLetterContentRequest(name=first),
                metadata=_bearer(owner_token),
            )
        )
        self.say(f"  content identical: {content == data}")
        progress = self.sender_custody.GetMailing(
            custody_pb2.GetMailingRequest(name=mailing.name), metadata=_bearer(sender_token)
        ).progress
        self.say(
            f"  progress: notified {progress.notified}, accepted {progress.accepted},"
            f" refused {progress.refused}, expired {progress.expired}"
        )
        self.out.mkdir(parents=True, exist_ok=True)
        report = self.out / "mailing-report.csv"
        report.write_bytes(
            b"".join(
                c.data
                for c in self.sender_custody.GetMailingReport(
                    custody_pb2.GetMailingReportRequest(name=mailing.name),
                    metadata=_bearer(sender_token),
                )
            )
        )
        self.say(f"5. The mailing's report: {report}")
        commands = self.write_evidence(first, sender_token)
        self.say("Verify the accepted letter's evidence with:")
        for command in commands:
            self.say(f"  {command}")
        return commands


def mailing_requests(
    request_id: str,
    reference: str,
    recipients: list[tuple[str, str]],
    parts: list[tuple[str, str, bytes]],
) -> Iterator[custody_pb2.DepositMailingRequest]:
    """A DepositMailing stream: the envelope, then each part's chunks once.
    ``recipients``: (party name, letter reference); ``parts``: (file name, media type, data)."""
    yield custody_pb2.DepositMailingRequest(
        envelope=custody_pb2.MailingEnvelope(
            request_id=request_id,
            reference=reference,
            recipients=[
                custody_pb2.MailingRecipient(recipient=r, letter_reference=ref)
                for r, ref in recipients
            ],
            parts=[
                custody_pb2.ContentPart(filename=f, media_type=m, size_bytes=len(d))
                for f, m, d in parts
            ],
        )
    )
    for index, (_, _, data) in enumerate(parts):
        for offset in range(0, len(data), CHUNK):
            yield custody_pb2.DepositMailingRequest(
                chunk=custody_pb2.ContentChunk(part_index=index, data=data[offset : offset + CHUNK])
            )


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


def _bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def _signature_and_timestamp(seal: bytes) -> tuple[bytes, bytes]:
    """The signature value and its RFC 3161 token (the CAdES B-T attribute)."""
    content = asn1.decode_der(structures.ContentInfo, seal).content
    (signer_info,) = content.signer_infos.as_list()
    assert signer_info.unsigned_attrs is not None
    for attribute in signer_info.unsigned_attrs.as_list():
        if attribute.attr_type == structures.ID_SIGNATURE_TIME_STAMP_TOKEN:
            (token,) = attribute.attr_values.as_list()
            return signer_info.signature, asn1.encode_der(token)
    raise ValueError("the seal carries no signature timestamp")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lre-client", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command, kind, text in (
        ("walkthrough", Walkthrough, "a letter's whole life against `make run`"),
        ("mailing", MailingWalkthrough, "one document to several recipients against `make run`"),
    ):
        walk = commands.add_parser(command, help=text)
        walk.set_defaults(kind=kind)
        walk.add_argument("document", type=Path)
        walk.add_argument("--server", default="127.0.0.1:50051")
        walk.add_argument("--signer", default="127.0.0.1:50052")
        walk.add_argument("--maildir", type=Path, default=Path("var/mail"))
        walk.add_argument("--out", type=Path, default=Path(f"var/{command}"))
        walk.add_argument(
            "--tls-dir",
            type=Path,
            default=Path("var/tls"),
            help="mutual TLS with the certificates `make run` made here (plaintext if absent)",
        )
    probe = commands.add_parser(
        "health", help="exit 0 if the service is SERVING (an exec probe over mutual TLS)"
    )
    health.add_arguments(probe)
    args = parser.parse_args(argv)
    if args.command == "health":
        return health.run(args)
    tls_dir = args.tls_dir if (args.tls_dir / "ca.pem").exists() else None
    with connect(args.server, args.signer, tls_dir) as connections:
        try:
            args.kind(connections, args.maildir, args.out).run(args.document)
        except grpc.RpcError as exc:
            print(f"lre-client: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
