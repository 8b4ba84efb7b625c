"""Deposit through the real server and signer, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import datetime as dt
import email.header
import hashlib
import mailbox
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import create_engine, func, select, text

from lre.client.parties import EnrolmentCodes, enroll_party, log_in, register_party
from lre.server.storage import models
from lre.v1 import common_pb2, custody_pb2, custody_pb2_grpc, identity_pb2, identity_pb2_grpc
from tests.support.clients import (
    ANNEX,
    CONTENT,
    confirm_professional,
    deposit_letter,
    register_company,
    wait_notified,
)
from tests.support.pki import verify_seal
from tests.support.processes import wait_for
from tests.support.rpc import field_violations
from tests.support.server import ServerProcess, libfaketime, server_process
from tests.support.signer import SignerProcess

PASSWORD = "correct horse battery staple"


@pytest.fixture
def served(
    database_url: str, signer_process: SignerProcess, tmp_path: Path
) -> Iterator[ServerProcess]:
    # Deposit alone: the dispatcher is tested on its own.
    with server_process(signer_process, tmp_path, database_url, run_workers="false") as process:
        yield process
    assert b"resiliation" not in process.log.read_bytes()


@pytest.fixture
def server(served: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(served.address) as channel:
        yield channel


@pytest.fixture
def codes(served: ServerProcess) -> EnrolmentCodes:
    return served.enrolment_codes


_login = register_party


def test_deposit_refused_without_consent_then_accepted_with_it(
    server: grpc.Channel,
    codes: EnrolmentCodes,
    database_url: str,
    signer_process: SignerProcess,
    tmp_path: Path,
) -> None:
    identity = identity_pb2_grpc.IdentityServiceStub(server)
    custody = custody_pb2_grpc.CustodyServiceStub(server)
    sender, sender_token = register_company(
        identity, codes, "s-1", "Bailleur SARL", "gestion@bailleur.example"
    )
    recipient, recipient_token = _login(
        identity,
        "r-1",
        codes=codes,
        kind=identity_pb2.PARTY_KIND_NATURAL_PERSON,
        given_name="Camille",
        family_name="Dupont",
        email="camille@example.org",
    )
    as_sender = (("authorization", f"Bearer {sender_token}"),)

    # A consumer who has not consented: refused, with a sealed SubmissionRejection.
    with pytest.raises(grpc.RpcError) as refused:
        deposit_letter(custody, sender_token, recipient, "d-1")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    status = rpc_status.from_call(refused.value)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in status.details)
    assert info.reason == "CONSENT_MISSING" and info.domain == "lre"
    assert info.metadata["reasonCode"] == "consent_missing"
    rejected = custody.ListEvidence(
        custody_pb2.ListEvidenceRequest(parent=info.metadata["letter"]), metadata=as_sender
    )
    (rejection,) = rejected.evidence
    document = verify_seal(rejection, signer_process, tmp_path)
    assert document["event"] == "http://uri.etsi.org/19522/Event/SubmissionRejection"
    assert document["reasonCode"] == "consent_missing"
    # A retry gets the same refusal, not a second letter.
    with pytest.raises(grpc.RpcError) as again:
        deposit_letter(custody, sender_token, recipient, "d-1")
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    identity.GrantConsent(
        identity_pb2.GrantConsentRequest(
            request_id="c-1", recipient=recipient, sender=sender, method="signed-form"
        )
    )
    letter = deposit_letter(custody, sender_token, recipient, "d-2")
    assert letter.state == common_pb2.LETTER_STATE_DEPOSITED
    assert [p.digest.value for p in letter.parts] == [
        hashlib.sha256(CONTENT).digest(),
        hashlib.sha256(ANNEX).digest(),
    ]
    assert deposit_letter(custody, sender_token, recipient, "d-2").name == letter.name  # idempotent

    (proof,) = custody.ListEvidence(
        custody_pb2.ListEvidenceRequest(parent=letter.name), metadata=as_sender
    ).evidence
    document = verify_seal(proof, signer_process, tmp_path)
    # R53-2: sender and recipient names and addresses, the letter id, the deposit time, the seal.
    assert document["event"] == "http://uri.etsi.org/19522/Event/SubmissionAcceptance"
    assert document["format"] == "lre-evidence/2"
    assert document["sender"]["id"] == sender
    assert (document["sender"]["name"], document["sender"]["email"]) == (
        "Bailleur SARL",
        "gestion@bailleur.example",
    )
    assert document["sender"]["authentication"]["level"].startswith("http://eidas.europa.eu/LoA/")
    assert document["recipient"] == {
        "id": recipient,
        "name": "Camille Dupont",
        "email": "camille@example.org",
    }
    assert document["letterId"] == letter.name
    assert [d["digestValue"] for d in document["contentDigests"]] == [
        base64.b64encode(hashlib.sha256(CONTENT).digest()).decode(),
        base64.b64encode(hashlib.sha256(ANNEX).digest()).decode(),
    ]
    # The same evidence as a signed PDF, for people.
    pdf = custody.GetEvidenceProof(
        custody_pb2.GetEvidenceProofRequest(name=proof.name), metadata=as_sender
    )
    assert pdf.name == proof.name and pdf.pdf.startswith(b"%PDF-")
    assert (
        custody.GetEvidence(
            custody_pb2.GetEvidenceRequest(name=proof.name), metadata=as_sender
        ).seal
        == proof.seal
    )

    # The recipient sees that a letter waits, not who sent it; a stranger sees nothing.
    as_recipient = (("authorization", f"Bearer {recipient_token}"),)
    seen = custody.GetLetter(custody_pb2.GetLetterRequest(name=letter.name), metadata=as_recipient)
    assert seen.sender == "" and seen.reference == letter.reference
    _, stranger_token = _login(
        identity,
        "x-1",
        codes=codes,
        kind=identity_pb2.PARTY_KIND_NATURAL_PERSON,
        given_name="X",
        family_name="Y",
        email="x@example.org",
    )
    for metadata, code in (
        ((("authorization", f"Bearer {stranger_token}"),), grpc.StatusCode.NOT_FOUND),
        ((), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", "Bearer forged"),), grpc.StatusCode.UNAUTHENTICATED),
    ):
        with pytest.raises(grpc.RpcError) as denied:
            custody.GetLetter(custody_pb2.GetLetterRequest(name=letter.name), metadata=metadata)
        assert denied.value.code() == code
    # Before accepting, the recipient reads no evidence: each names the sender.
    assert not custody.ListEvidence(
        custody_pb2.ListEvidenceRequest(parent=letter.name), metadata=as_recipient
    ).evidence
    with pytest.raises(grpc.RpcError) as hidden:
        custody.GetEvidence(custody_pb2.GetEvidenceRequest(name=proof.name), metadata=as_recipient)
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as hidden:
        custody.GetEvidenceProof(
            custody_pb2.GetEvidenceProofRequest(name=proof.name), metadata=as_recipient
        )
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND

    # Each side lists its letters; the sender lists what it owes.
    def names(role: int, metadata: tuple[tuple[str, str], ...], state: int = 0) -> list[str]:
        request = custody_pb2.ListLettersRequest(role=role, state=state, page_size=10)  # type: ignore[arg-type]
        return [item.name for item in custody.ListLetters(request, metadata=metadata).letters]

    assert names(custody_pb2.LETTER_ROLE_SENDER, as_sender) == [
        letter.name,
        info.metadata["letter"],
    ]
    assert names(custody_pb2.LETTER_ROLE_SENDER, as_sender, common_pb2.LETTER_STATE_REJECTED) == [
        info.metadata["letter"]
    ]
    assert names(custody_pb2.LETTER_ROLE_RECIPIENT, as_recipient) == [letter.name]
    assert names(custody_pb2.LETTER_ROLE_RECIPIENT, as_sender) == []
    with pytest.raises(grpc.RpcError) as no_role:
        custody.ListLetters(custody_pb2.ListLettersRequest(), metadata=as_sender)
    assert no_role.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (charge,) = custody.ListCharges(custody_pb2.ListChargesRequest(), metadata=as_sender).charges
    assert (charge.letter, charge.amount_minor, charge.currency) == (letter.name, 399, "EUR")
    assert not custody.ListCharges(custody_pb2.ListChargesRequest(), metadata=as_recipient).charges

    # At rest: content encrypted, key wrapped, a charge and a notification to send.
    engine = create_engine(database_url)
    with engine.connect() as connection:
        chunks = [
            bytes(c)
            for c in connection.execute(text("SELECT ciphertext FROM content_chunks")).scalars()
        ]
        assert chunks and not any(b"resiliation" in c or b"annexe" in c for c in chunks)
        assert (
            connection.execute(
                select(func.count()).select_from(models.Charge.__table__)
            ).scalar_one()
            == 1
        )
        assert (
            sorted(
                connection.execute(
                    text("SELECT kind FROM outbox_messages WHERE letter_id IS NOT NULL")
                ).scalars()
            )
            == ["letter_waiting", "proof"]  # the notice, and the sender's proof of deposit
        )
    engine.dispose()


def test_bad_streams_store_nothing(
    server: grpc.Channel, codes: EnrolmentCodes, database_url: str
) -> None:
    identity = identity_pb2_grpc.IdentityServiceStub(server)
    custody = custody_pb2_grpc.CustodyServiceStub(server)
    _, token = register_company(identity, codes, "s-2", "A", "a@example.org")
    recipient, _ = register_company(identity, codes, "r-2", "B", "b@example.org")
    metadata = (("authorization", f"Bearer {token}"),)

    def letters() -> int:
        engine = create_engine(database_url)
        with engine.connect() as connection:
            count = connection.execute(text("SELECT count(*) FROM letters")).scalar_one()
        engine.dispose()
        return int(count)

    cases = {
        "chunk before envelope": [
            custody_pb2.DepositLetterRequest(chunk=custody_pb2.ContentChunk(data=b"x"))
        ],
        "longer than declared": [
            custody_pb2.DepositLetterRequest(
                envelope=custody_pb2.LetterEnvelope(
                    request_id="b-1",
                    recipient=recipient,
                    parts=[
                        custody_pb2.ContentPart(
                            filename="a.txt", media_type="text/plain", size_bytes=3
                        )
                    ],
                )
            ),
            custody_pb2.DepositLetterRequest(
                chunk=custody_pb2.ContentChunk(part_index=0, data=b"abcd")
            ),
        ],
        "shorter than declared": [
            custody_pb2.DepositLetterRequest(
                envelope=custody_pb2.LetterEnvelope(
                    request_id="b-2",
                    recipient=recipient,
                    parts=[
                        custody_pb2.ContentPart(
                            filename="a.txt", media_type="text/plain", size_bytes=30
                        )
                    ],
                )
            ),
            custody_pb2.DepositLetterRequest(
                chunk=custody_pb2.ContentChunk(part_index=0, data=b"abcd")
            ),
        ],
        "path in filename": [
            custody_pb2.DepositLetterRequest(
                envelope=custody_pb2.LetterEnvelope(
                    request_id="b-3",
                    recipient=recipient,
                    parts=[
                        custody_pb2.ContentPart(
                            filename="../etc/passwd", media_type="text/plain", size_bytes=1
                        )
                    ],
                )
            )
        ],
    }

    def with_digest(
        request_id: str, algorithm: common_pb2.HashAlgorithm, value: bytes
    ) -> list[Any]:
        part = custody_pb2.ContentPart(
            filename="a.txt",
            media_type="text/plain",
            size_bytes=3,
            digest=common_pb2.Digest(algorithm=algorithm, value=value),
        )
        envelope = custody_pb2.LetterEnvelope(request_id=request_id, recipient=recipient)
        envelope.parts.append(part)
        return [
            custody_pb2.DepositLetterRequest(envelope=envelope),
            custody_pb2.DepositLetterRequest(chunk=custody_pb2.ContentChunk(data=b"abc")),
        ]

    def sha(data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    sha256 = common_pb2.HASH_ALGORITHM_SHA256
    cases |= {
        "content other than its digest": with_digest("b-4", sha256, sha(b"abd")),
        "digest of the wrong length": with_digest("b-5", sha256, sha(b"abc")[:31]),
        "digest not SHA-256": with_digest(
            "b-6", common_pb2.HASH_ALGORITHM_SHA512, hashlib.sha512(b"abc").digest()
        ),
    }
    for name, messages in cases.items():
        with pytest.raises(grpc.RpcError) as raised:
            custody.DepositLetter(iter(messages), metadata=metadata, timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        if "digest" in name:
            assert "envelope.parts[0].digest" in field_violations(raised.value), name
    assert letters() == 0
    # The content matching its declared digest is taken.
    letter = custody.DepositLetter(
        iter(with_digest("b-7", sha256, sha(b"abc"))), metadata=metadata, timeout=10
    )
    assert letter.parts[0].digest.value == sha(b"abc") and letters() == 1


def test_a_letter_nobody_answers_expires_on_its_own(
    signer_process: SignerProcess, tmp_path: Path
) -> None:
    """The real server and its own workers; only its wall clock moves (libfaketime),
    17 days on, as it would while the recipient stays silent."""
    clock = tmp_path / "faketime"
    clock.write_text("+0\n")
    faked = {
        "LD_PRELOAD": libfaketime(),
        "FAKETIME_TIMESTAMP_FILE": str(clock),
        "FAKETIME_CACHE_DURATION": "1",
        "DONT_FAKE_MONOTONIC": "1",  # timers and timeouts keep real time
    }
    with (
        server_process(
            signer_process,
            tmp_path,
            f"sqlite:///{tmp_path / 'lre.db'}",
            environment=faked,
            outbox_interval_s="0.2",
            expiry_interval_s="0.5",
            session_ttl_s=str(40 * 86400),
            # Only the server's clock moves: the signer's TSA keeps real time.
            evidence_clock_skew_s=str(40 * 86400),
        ) as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        identity = identity_pb2_grpc.IdentityServiceStub(channel)
        custody = custody_pb2_grpc.CustodyServiceStub(channel)
        codes = server.enrolment_codes
        _, sender = register_company(
            identity, codes, "xs", "Bailleur SARL", "gestion@bailleur.example"
        )
        enrolled = enroll_party(
            identity,
            "xr",
            codes=codes,
            kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
            professional=True,
            company_name="Dest SA",
            email="courrier@dest.example",
        )
        recipient = enrolled.name
        confirm_professional(identity, recipient)
        as_sender = (("authorization", f"Bearer {sender}"),)
        letter = deposit_letter(custody, sender, recipient, "x-1")
        wait_notified(custody, [letter], as_sender)
        request = custody_pb2.GetLetterRequest(name=letter.name)
        deadline = custody.GetLetter(request, metadata=as_sender).acceptance_deadline
        clock.write_text("+17d\n")  # the window closes unanswered
        assert wait_for(
            lambda: (
                custody.GetLetter(request, metadata=as_sender).state
                == common_pb2.LETTER_STATE_EXPIRED
            ),
            timeout=30,
        ), server.log.read_text()[-2000:]
        expired = custody.GetLetter(request, metadata=as_sender)
        assert expired.decision_time == deadline  # dated at the window's end
        evidence = custody.ListEvidence(
            custody_pb2.ListEvidenceRequest(parent=letter.name), metadata=as_sender
        ).evidence
        assert [e.event for e in evidence] == [
            common_pb2.EVIDENCE_EVENT_SUBMISSION_ACCEPTANCE,
            common_pb2.EVIDENCE_EVENT_NOTIFICATION_FOR_ACCEPTANCE,
            common_pb2.EVIDENCE_EVENT_ACCEPTANCE_REJECTION_EXPIRY,
        ]
        document = verify_seal(evidence[-1], signer_process, tmp_path)
        assert document["event"].endswith("AcceptanceRejectionExpiry")
        # The recipient logs in, 17 days on (the server's time), and is too late.
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=17)
        as_recipient = (("authorization", f"Bearer {log_in(identity, enrolled, later)}"),)
        for late in (
            lambda: custody.AcceptLetter(
                custody_pb2.AcceptLetterRequest(name=letter.name), metadata=as_recipient
            ),
            lambda: list(
                custody.DownloadLetterContent(
                    custody_pb2.DownloadLetterContentRequest(name=letter.name),
                    metadata=as_recipient,
                )
            ),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                late()
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION

        def sender_told() -> bool:
            return any(
                "non-claim"
                in str(email.header.make_header(email.header.decode_header(m["Subject"])))
                for m in mailbox.Maildir(server.maildir)
                if m["To"] == "gestion@bailleur.example"
            )

        assert wait_for(sender_told, timeout=30)
