"""Evidence lre-evidence/2 over the real signer: sealed and verified by openssl,
its time agreeing with the seal's qualified timestamp, the proof e-mails with
their signed PDF (checked by pdfsig), and what a recipient may read."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import shutil
import subprocess
import uuid
from email.message import Message
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509

from lre.server.adapters.signer import ContentKeys
from lre.server.domain.errors import NotFound
from lre.server.domain.evidence import EvidenceTimeMismatch
from lre.server.domain.letters import EvidenceEvent, LetterState
from lre.server.domain.log import LogKind
from lre.server.domain.records import EvidenceRecord
from lre.server.proofs import ProofInputError, proof_pdf
from lre.server.proofs.document import read, read_seal
from lre.server.services.custody import DeclaredPart, DepositService, EvidenceRecorder
from lre.server.storage import db, models
from tests.support.journal import security_journal
from tests.support.mail import Inbox, subject_of
from tests.support.pki import openssl
from tests.support.services import Clock
from tests.support.signer import SignerProcess
from tests.support.world import EVIDENCE_POLICY, SENDER_EMAIL, World

RECIPIENT_EMAIL = "courrier@destinataire.example"
PART = DeclaredPart("a.pdf", "application/pdf", 5)


def _sender_evidence(world: World, letter_id: uuid.UUID) -> dict[EvidenceEvent, EvidenceRecord]:
    return {e.event: e for e in world.queries.evidence_for(world.session, letter_id)}


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def nss_db(signer_process: SignerProcess, tmp_path: Path) -> str:
    """An NSS database trusting the development root, for pdfsig."""
    if shutil.which("pdfsig") is None or shutil.which("certutil") is None:
        pytest.fail("pdfsig and certutil are required (poppler-utils, libnss3-tools)")
    database = f"sql:{tmp_path}"
    for command in (
        ["certutil", "-N", "-d", database, "--empty-password"],
        ["certutil", "-A", "-d", database, "-n", "lre-dev-root", "-t", "C,C,C",
         "-i", str(signer_process.root_ca)],
    ):  # fmt: skip
        result = _run(*command)
        assert result.returncode == 0, result.stderr
    return database


def test_deposit_evidence_is_v2_sealed_and_verified_by_openssl(
    world: World, signer_process: SignerProcess, tmp_path: Path
) -> None:
    letter = world.deposit()
    evidence = _sender_evidence(world, letter.id)[EvidenceEvent.SUBMISSION_ACCEPTANCE]
    sealed = tmp_path / "evidence.p7m"
    sealed.write_bytes(evidence.seal)
    verify = openssl(
        "cms", "-verify", "-inform", "DER", "-in", sealed, "-CAfile", signer_process.root_ca
    )
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.encode() == evidence.document

    document = json.loads(evidence.document)
    assert document["format"] == "lre-evidence/2"
    assert document["policyId"] == EVIDENCE_POLICY
    assert document["letterId"] == f"letters/{letter.id}"
    # The reference of the letter's e-mails; no notification yet.
    assert document["letterReference"] == letter.reference
    assert "notificationTime" not in document
    # The issuer's certificate is the one that made the seal.
    seal_certificate = world.signer.certificate_chain("seal")[0]
    parsed = x509.load_der_x509_certificate(seal_certificate)
    assert document["issuer"]["certificate"] == {
        "digestMethod": "http://www.w3.org/2001/04/xmlenc#sha256",
        "digestValue": base64.b64encode(hashlib.sha256(seal_certificate).digest()).decode(),
        "issuer": parsed.issuer.rfc4514_string(),
        "serialNumber": str(parsed.serial_number),
    }
    assert document["sender"]["id"] == f"parties/{world.session.party_id}"
    assert document["sender"]["email"] == SENDER_EMAIL
    assert document["sender"]["authentication"] == {
        "method": ["knowledge", "possession", "otp"],
        "level": "http://eidas.europa.eu/LoA/high",
        "time": world.session.authenticated_at.isoformat(timespec="microseconds").replace(
            "+00:00", "Z"
        ),
    }
    assert document["recipient"]["id"] == f"parties/{world.recipient.id}"
    assert "authentication" not in document["recipient"]  # not authenticated for a deposit
    (digest,) = document["contentDigests"]
    assert base64.b64decode(digest["digestValue"]) == hashlib.sha256(b"%PDF!").digest()


def test_event_time_signing_time_and_timestamp_agree(world: World) -> None:
    # The world's clock is real time here (it has not been moved).
    world.clock.now = dt.datetime.now(dt.UTC)
    letter = world.deposit()
    evidence = _sender_evidence(world, letter.id)[EvidenceEvent.SUBMISSION_ACCEPTANCE]
    event_time = dt.datetime.fromisoformat(json.loads(evidence.document)["eventTime"])
    stamped = read_seal(evidence.document, evidence.seal)
    assert stamped.timestamp_accuracy == dt.timedelta(seconds=1)
    assert abs(stamped.timestamp_time - event_time) <= stamped.timestamp_accuracy
    signer_info = cms.ContentInfo.load(evidence.seal)["content"]["signer_infos"][0]
    (signing_time,) = (
        a["values"][0].native
        for a in signer_info["signed_attrs"]
        if a["type"].native == "signing_time"
    )
    # Whole seconds (UTCTime), cut: never after the timestamp that proves the
    # seal existed, and within the second of the event.
    assert signing_time <= stamped.timestamp_time
    assert signing_time.microsecond == 0
    assert event_time - dt.timedelta(seconds=1) < signing_time
    assert signing_time - event_time < dt.timedelta(seconds=2)


def test_a_server_clock_ahead_of_the_tsa_records_nothing(world: World) -> None:
    ahead = Clock()
    ahead.now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    strict = EvidenceRecorder(world.signer, "Strict provider", EVIDENCE_POLICY, ahead)
    deposits = DepositService(
        world.stores,
        ContentKeys(world.signer),
        strict,
        world.policy,
        ahead,
    )
    request_id = str(uuid.uuid4())
    with pytest.raises(EvidenceTimeMismatch, match="precedes event time"):
        deposits.deposit(
            world.session,
            request_id,
            world.recipient.id,
            [PART],
            iter([(0, b"%PDF!")]),
        )
    with db.sessions(world.engine)() as session:
        assert not session.query(models.Letter).filter_by(request_id=request_id).count()
    # The same recorder, its clock in time again, records.
    ahead.now = dt.datetime.now(dt.UTC)
    letter, _ = deposits.deposit(
        world.session, request_id, world.recipient.id, [PART], iter([(0, b"%PDF!")])
    )
    assert letter.state is LetterState.DEPOSITED


def _attachments(message: Message) -> dict[str, Message]:
    return {str(p.get_filename()): p for p in message.walk() if p.get_filename()}


def _check_pdf(part: Message, path: Path, nss_db: str) -> None:
    assert part.get_content_type() == "application/pdf"
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    path.write_bytes(payload)
    result = _run("pdfsig", "-nssdir", nss_db, path)
    assert result.returncode == 0, result.stderr
    assert "Signature Validation: Signature is Valid." in result.stdout, result.stdout
    assert "Certificate Validation: Certificate is Trusted." in result.stdout, result.stdout


def test_proof_emails_carry_the_signed_pdf_and_a_signed_data_seal(
    world: World, smtp_port: int, nss_db: str, tmp_path: Path
) -> None:
    letter = world.deposit()
    with Inbox(smtp_port) as inbox:
        world.drain()  # the notice and the proof of deposit
        recipient = world.recipient_session()
        world.decisions.accept(recipient, letter.id)
        assert b"".join(c for _, c in world.decisions.download(recipient, letter.id)) == b"%PDF!"
        world.drain()
    by_subject = {subject_of(m): m for m in inbox.messages}
    deposit = by_subject[f"Preuve de dépôt / Proof of deposit - {letter.reference}"]
    assert deposit["To"] == SENDER_EMAIL
    parts = _attachments(deposit)
    seal = parts[f"SubmissionAcceptance-{letter.reference}.p7m"]
    assert seal.get_content_type() == "application/pkcs7-mime"
    assert seal.get_param("smime-type") == "signed-data"
    _check_pdf(parts[f"SubmissionAcceptance-{letter.reference}.pdf"], tmp_path / "d.pdf", nss_db)

    # The recipient's own proofs: acceptance and content handover, to them.
    for event, title in (
        ("ConsignmentAcceptance", "Preuve d'acceptation / Proof of acceptance"),
        ("ContentHandover", "Preuve de remise du contenu / Proof of content handover"),
    ):
        to_recipient = [
            m
            for m in inbox.messages
            if m["To"] == RECIPIENT_EMAIL and subject_of(m) == f"{title} - {letter.reference}"
        ]
        assert len(to_recipient) == 1, [subject_of(m) for m in inbox.messages]
        parts = _attachments(to_recipient[0])
        _check_pdf(parts[f"{event}-{letter.reference}.pdf"], tmp_path / f"{event}.pdf", nss_db)
    # The sender gets its acceptance proof too, not the recipient's handover.
    assert [
        m["To"] for m in inbox.messages if subject_of(m).startswith("Preuve de remise du contenu")
    ] == [RECIPIENT_EMAIL]


def test_a_recipient_reads_the_evidence_about_them_only_after_accepting(
    world: World, smtp_port: int
) -> None:
    accepted, refused = world.notified(2, smtp_port)
    recipient = world.recipient_session()
    deposit_proof = _sender_evidence(world, accepted.id)[EvidenceEvent.SUBMISSION_ACCEPTANCE]
    # Before an answer: nothing, not even the notification (it names the sender).
    assert world.queries.evidence_for(recipient, accepted.id) == []
    with pytest.raises(NotFound):
        world.queries.evidence(recipient, accepted.id, deposit_proof.id)
    with pytest.raises(NotFound):
        world.queries.evidence_proof(recipient, accepted.id, deposit_proof.id)

    world.decisions.refuse(recipient, refused.id, "")
    assert world.queries.evidence_for(recipient, refused.id) == []  # the sender stays unknown

    world.clock.advance(seconds=1)
    world.decisions.accept(recipient, accepted.id)
    read = {e.event: e for e in world.queries.evidence_for(recipient, accepted.id)}
    assert set(read) == {
        EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE,
        EvidenceEvent.CONSIGNMENT_ACCEPTANCE,
    }
    acceptance = json.loads(read[EvidenceEvent.CONSIGNMENT_ACCEPTANCE].document)
    notification = json.loads(read[EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE].document)
    # An answer says when the window it answers in opened: the notification's time.
    assert acceptance["notificationTime"] == notification["eventTime"]
    assert acceptance["letterReference"] == accepted.reference
    assert acceptance["recipient"]["authentication"]["level"] == (
        "http://eidas.europa.eu/LoA/substantial"
    )
    list(world.decisions.download(recipient, accepted.id))
    (handover,) = (
        e
        for e in world.queries.evidence_for(recipient, accepted.id)
        if e.event is EvidenceEvent.CONTENT_HANDOVER
    )
    pdf = world.queries.evidence_proof(recipient, accepted.id, handover.id)
    assert pdf.startswith(b"%PDF-")
    # A second download is no second handover, but it is journaled.
    assert _downloads(world, accepted.id) == []
    list(world.decisions.download(recipient, accepted.id))
    handovers = [
        e
        for e in world.queries.evidence_for(recipient, accepted.id)
        if e.event is EvidenceEvent.CONTENT_HANDOVER
    ]
    assert handovers == [handover]
    assert _downloads(world, accepted.id) == ["recipient"]
    # Still not the sender's own proof of deposit.
    with pytest.raises(NotFound):
        world.queries.evidence(recipient, accepted.id, deposit_proof.id)
    # The refusal is coded, with or without a text.
    refusal = _sender_evidence(world, refused.id)[EvidenceEvent.CONSIGNMENT_REJECTION]
    assert json.loads(refusal.document)["reasonCode"] == "refused_by_recipient"


def test_evidence_sealed_as_v1_still_makes_a_proof(world: World) -> None:
    """Evidence sealed before v2: the issuer a bare name, digests in hex."""
    v1 = json.dumps(
        {
            "format": "lre-evidence/1",
            "evidenceId": str(uuid.uuid4()),
            "event": "http://uri.etsi.org/19522/Event/SubmissionAcceptance",
            "eventTime": "2026-11-28T16:05:07.250000Z",
            "issuer": "LRE Test Provider SAS",
            "sender": {"name": "Bailleur SARL", "email": "gestion@bailleur.example"},
            "recipient": {"name": "Dest SA", "email": RECIPIENT_EMAIL},
            "letterId": f"letters/{uuid.uuid4()}",
            "submissionTime": "2026-11-28T16:05:07.250000Z",
            "contentDigests": [
                {
                    "filename": "a.pdf",
                    "mediaType": "application/pdf",
                    "size": 5,
                    "digestMethod": "http://www.w3.org/2001/04/xmlenc#sha256",
                    "digestValue": "ab" * 32,
                }
            ],
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    seal = world.signer.seal(v1)
    document = read(v1, seal)
    assert document.issuer == "LRE Test Provider SAS"
    assert document.parts[0].digest == "ab" * 32
    assert document.sender.party_id is None and document.policy_id is None
    assert proof_pdf(v1, seal, world.signer).startswith(b"%PDF-")


def test_a_v2_evidence_naming_another_seal_certificate_makes_no_proof(world: World) -> None:
    letter = world.deposit()
    evidence = _sender_evidence(world, letter.id)[EvidenceEvent.SUBMISSION_ACCEPTANCE]
    document = json.loads(evidence.document)
    document["issuer"]["certificate"]["digestValue"] = base64.b64encode(bytes(32)).decode()
    forged = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(ProofInputError, match="seal certificate"):
        read(forged, world.signer.seal(forged))


def _downloads(world: World, letter_id: uuid.UUID) -> list[str]:
    """The roles of the journaled downloads of the letter, oldest first."""
    return [
        entry["role"]
        for entry in security_journal(db.sessions(world.engine))
        if entry["kind"] == LogKind.CONTENT_DOWNLOADED.value
        and entry["subject"] == f"letters/{letter_id}"
    ]
