"""Deposit, then the server's own dispatcher notifies the recipient into a
Maildir, and the code in the e-mail verifies through the API."""

from __future__ import annotations

import email
import mailbox
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from lre.v1 import (
    common_pb2,
    custody_pb2,
    custody_pb2_grpc,
    identity_pb2,
    identity_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
)
from tests.conftest import SignerProcess
from tests.e2e.test_deposit_grpc import _deposit, _login
from tests.support import BIN, SERVING, free_port, health_status, running, wait_for


@pytest.fixture
def server(signer_process: SignerProcess, tmp_path: Path) -> Iterator[tuple[grpc.Channel, Path]]:
    key = tmp_path / "server.key"
    key.write_text(secrets.token_hex(32))
    maildir = tmp_path / "mail"
    port = free_port()
    env = {
        "LRE_SERVER_SECRETS_KEY_FILE": str(key),
        "LRE_SERVER_DATABASE_URL": f"sqlite:///{tmp_path / 'lre.db'}",
        "LRE_SERVER_GRPC_ADDRESS": f"127.0.0.1:{port}",
        "LRE_SERVER_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
        "LRE_SERVER_SIGNER_ADDRESS": signer_process.grpc_address,
        "LRE_SERVER_MAIL_TRANSPORT": f"maildir:{maildir}",
        "LRE_SERVER_OUTBOX_INTERVAL_S": "0.2",
    }
    subprocess.run(
        [str(BIN / "lre-server"), "migrate"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    with running([str(BIN / "lre-server"), "serve"], env, tmp_path / "server.log"):
        address = f"127.0.0.1:{port}"
        assert wait_for(lambda: health_status(address, "lre.v1.CustodyService") == SERVING)
        with grpc.insecure_channel(address) as channel:
            yield channel, maildir


def test_a_deposit_is_notified_on_its_own_and_the_code_verifies(
    server: tuple[grpc.Channel, Path],
) -> None:
    channel, maildir = server
    identity = identity_pb2_grpc.IdentityServiceStub(channel)
    custody = custody_pb2_grpc.CustodyServiceStub(channel)
    _, token = _login(
        identity,
        "s",
        kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
        professional=True,
        company_name="Bailleur SARL",
        email="gestion@bailleur.example",
    )
    recipient, _ = _login(
        identity,
        "r",
        kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
        professional=True,
        company_name="Dest SA",
        email="courrier@dest.example",
    )
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
