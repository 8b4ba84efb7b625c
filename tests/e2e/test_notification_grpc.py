"""Deposit, then the server's own dispatcher notifies the recipient into a
Maildir, and the code in the e-mail verifies through the API."""

from __future__ import annotations

import email
import mailbox
import re
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from lre.v1 import (
    common_pb2,
    custody_pb2,
    custody_pb2_grpc,
    identity_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
)
from tests.conftest import SignerProcess
from tests.e2e.conftest import server_process
from tests.e2e.test_deposit_grpc import ANNEX, CONTENT, _company, _deposit, _verify_seal
from tests.support import wait_for


@pytest.fixture
def server(signer_process: SignerProcess, tmp_path: Path) -> Iterator[tuple[grpc.Channel, Path]]:
    database = f"sqlite:///{tmp_path / 'lre.db'}"
    with (
        server_process(signer_process, tmp_path, database, outbox_interval_s="0.2") as process,
        grpc.insecure_channel(process.address) as channel,
    ):
        yield channel, process.maildir


def test_a_deposit_is_notified_on_its_own_and_the_code_verifies(
    server: tuple[grpc.Channel, Path],
) -> None:
    channel, maildir = server
    identity = identity_pb2_grpc.IdentityServiceStub(channel)
    custody = custody_pb2_grpc.CustodyServiceStub(channel)
    _, token = _company(identity, "s", "Bailleur SARL", "gestion@bailleur.example")
    recipient, _ = _company(identity, "r", "Dest SA", "courrier@dest.example")
    letter = _deposit(custody, token, recipient, "d-1")
    metadata = (("authorization", f"Bearer {token}"),)

    def state() -> int:
        return int(
            custody.GetLetter(
                custody_pb2.GetLetterRequest(name=letter.name), metadata=metadata
            ).state
        )

    assert wait_for(lambda: state() == common_pb2.LETTER_STATE_NOTIFIED, timeout=30)
    notified = custody.GetLetter(custody_pb2.GetLetterRequest(name=letter.name), metadata=metadata)
    assert notified.HasField("acceptance_deadline")

    (message,) = [email.message_from_bytes(m.as_bytes()) for m in mailbox.Maildir(maildir)]
    assert message["To"] == "courrier@dest.example"
    payload = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_payload(
        decode=True
    )
    assert isinstance(payload, bytes)
    text = payload.decode()
    assert "Bailleur" not in message.as_string() and "bailleur.example" not in message.as_string()
    match = re.search(r"Verification code: (\S+)", text)
    assert match is not None
    notifications = notification_pb2_grpc.NotificationServiceStub(channel)
    verified = notifications.VerifyNotification(
        notification_pb2.VerifyNotificationRequest(
            letter_reference=letter.reference, verification_code=match.group(1)
        )
    )
    assert verified.genuine and verified.acceptance_deadline == notified.acceptance_deadline
    forged = notifications.VerifyNotification(
        notification_pb2.VerifyNotificationRequest(
            letter_reference=letter.reference, verification_code="AAAAA-AAAAA"
        )
    )
    assert not forged.genuine
    evidence = custody.ListEvidence(
        custody_pb2.ListEvidenceRequest(parent=letter.name), metadata=metadata
    ).evidence
    assert [e.event for e in evidence] == [
        common_pb2.EVIDENCE_EVENT_SUBMISSION_ACCEPTANCE,
        common_pb2.EVIDENCE_EVENT_NOTIFICATION_FOR_ACCEPTANCE,
    ]


def test_the_whole_life_of_accepted_and_refused_letters(
    server: tuple[grpc.Channel, Path], signer_process: SignerProcess, tmp_path: Path
) -> None:
    channel, _ = server
    identity = identity_pb2_grpc.IdentityServiceStub(channel)
    custody = custody_pb2_grpc.CustodyServiceStub(channel)
    _, sender_token = _company(identity, "s2", "Bailleur SARL", "gestion@bailleur.example")
    recipient, recipient_token = _company(identity, "r2", "Dest SA", "courrier@dest.example")
    as_sender = (("authorization", f"Bearer {sender_token}"),)
    as_recipient = (("authorization", f"Bearer {recipient_token}"),)
    accepted, refused = (
        _deposit(custody, sender_token, recipient, "l-1"),
        _deposit(custody, sender_token, recipient, "l-2"),
    )
    for letter in (accepted, refused):
        assert wait_for(
            lambda letter=letter: (
                custody.GetLetter(
                    custody_pb2.GetLetterRequest(name=letter.name), metadata=as_sender
                ).state
                == common_pb2.LETTER_STATE_NOTIFIED
            ),
            timeout=30,
        )

    def download(name: str) -> list[bytes]:
        parts: dict[int, bytes] = {}
        request = custody_pb2.DownloadLetterContentRequest(name=name)
        for chunk in custody.DownloadLetterContent(request, metadata=as_recipient, timeout=30):
            parts[chunk.part_index] = parts.get(chunk.part_index, b"") + chunk.data
        return [parts[i] for i in sorted(parts)]

    with pytest.raises(grpc.RpcError) as early:
        download(accepted.name)
    assert early.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as not_theirs:
        custody.AcceptLetter(
            custody_pb2.AcceptLetterRequest(name=accepted.name), metadata=as_sender
        )
    assert not_theirs.value.code() == grpc.StatusCode.NOT_FOUND

    seen = custody.AcceptLetter(
        custody_pb2.AcceptLetterRequest(name=accepted.name), metadata=as_recipient
    )
    assert seen.state == common_pb2.LETTER_STATE_ACCEPTED and seen.sender  # revealed on acceptance
    assert (
        custody.AcceptLetter(
            custody_pb2.AcceptLetterRequest(name=accepted.name), metadata=as_recipient
        ).state
        == seen.state
    )
    assert download(accepted.name) == [CONTENT, ANNEX]
    assert download(accepted.name) == [CONTENT, ANNEX]  # again, and one ContentHandover only
    with pytest.raises(grpc.RpcError) as final:
        custody.RefuseLetter(
            custody_pb2.RefuseLetterRequest(name=accepted.name), metadata=as_recipient
        )
    assert final.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    gone = custody.RefuseLetter(
        custody_pb2.RefuseLetterRequest(name=refused.name, reason="not mine"), metadata=as_recipient
    )
    assert gone.state == common_pb2.LETTER_STATE_REFUSED and not gone.sender
    with pytest.raises(grpc.RpcError) as locked:
        download(refused.name)
    assert locked.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    for letter, events in (
        (
            accepted,
            [
                "SubmissionAcceptance",
                "NotificationForAcceptance",
                "ConsignmentAcceptance",
                "ContentHandover",
            ],
        ),
        (refused, ["SubmissionAcceptance", "NotificationForAcceptance", "ConsignmentRejection"]),
    ):
        evidence = custody.ListEvidence(
            custody_pb2.ListEvidenceRequest(parent=letter.name), metadata=as_sender
        ).evidence
        documents = [_verify_seal(e, signer_process, tmp_path) for e in evidence]
        assert [d["event"].rsplit("/", 1)[-1] for d in documents] == events
    assert documents[-1]["reason"] == "not mine"
