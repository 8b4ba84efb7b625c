"""Deposit, then the server's own dispatcher notifies the recipient into a
Maildir, and the code in the e-mail verifies through the API."""

from __future__ import annotations

import email
import functools
import hashlib
import hmac
import json
import mailbox
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiosmtpd.smtp import Envelope
from sqlalchemy import create_engine, func, select

from lre.client.maildir import enrolment_code_in, maildir_enrolment_codes
from lre.client.parties import EnrolmentCodes
from lre.server.api.notification import PARTY_STREAMS
from lre.server.domain.letters import OutboxState
from lre.server.storage import models
from lre.v1 import (
    common_pb2,
    custody_pb2,
    custody_pb2_grpc,
    identity_pb2,
    identity_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
)
from tests.support import rfc9162
from tests.support.clients import (
    ANNEX,
    CONTENT,
    bearer,
    create_party,
    deposit_letter,
    expires_in,
    register_company,
    wait_notified,
)
from tests.support.mail import Inbox
from tests.support.pki import openssl, verify_seal
from tests.support.processes import BIN, free_port, wait_for
from tests.support.rpc import error_info
from tests.support.server import server_process
from tests.support.signer import SignerProcess
from tests.support.webhooks import Receiver


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
    codes = maildir_enrolment_codes(maildir)
    identity = identity_pb2_grpc.IdentityServiceStub(channel)
    custody = custody_pb2_grpc.CustodyServiceStub(channel)
    _, token = register_company(identity, codes, "s", "Bailleur SARL", "gestion@bailleur.example")
    recipient, _ = register_company(identity, codes, "r", "Dest SA", "courrier@dest.example")
    letter = deposit_letter(custody, token, recipient, "d-1")
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

    (message,) = [
        email.message_from_bytes(m.as_bytes())
        for m in mailbox.Maildir(maildir)
        if m["To"] == "courrier@dest.example"  # the sender gets a proof of deposit too
    ]
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
    channel, maildir = server
    codes = maildir_enrolment_codes(maildir)
    identity = identity_pb2_grpc.IdentityServiceStub(channel)
    custody = custody_pb2_grpc.CustodyServiceStub(channel)
    _, sender_token = register_company(
        identity, codes, "s2", "Bailleur SARL", "gestion@bailleur.example"
    )
    recipient, recipient_token = register_company(
        identity, codes, "r2", "Dest SA", "courrier@dest.example"
    )
    as_sender = (("authorization", f"Bearer {sender_token}"),)
    as_recipient = (("authorization", f"Bearer {recipient_token}"),)
    accepted, refused = (
        deposit_letter(custody, sender_token, recipient, "l-1"),
        deposit_letter(custody, sender_token, recipient, "l-2"),
    )
    wait_notified(custody, [accepted, refused], as_sender)

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
        documents = [verify_seal(e, signer_process, tmp_path) for e in evidence]
        assert [d["event"].rsplit("/", 1)[-1] for d in documents] == events
    assert documents[-1]["reason"] == "not mine"


def _returned(message_id: str, action: str = "failed", status: str = "5.1.1") -> bytes:
    """A delivery status notification (RFC 3464) as a mail server writes one."""
    return f"""From: MAILER-DAEMON@mx.dest.example
To: notifications@lre.invalid
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="RETURN"

--RETURN
Content-Type: text/plain

This is the mail system at host mx.dest.example. Your message could not be delivered.

--RETURN
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.dest.example

Final-Recipient: rfc822; courrier@dest.example
Action: {action}
Status: {status}
Diagnostic-Code: smtp; 550 5.1.1 <courrier@dest.example>: mailbox unknown

--RETURN
Content-Type: text/rfc822-headers

Message-ID: {message_id}
Subject: Lettre recommandee electronique en attente

--RETURN--
""".replace("\n", "\r\n").encode()


def test_a_returned_notice_ends_in_a_notification_failure_the_sender_is_told_of(
    server: tuple[grpc.Channel, Path], signer_process: SignerProcess, tmp_path: Path
) -> None:
    channel, maildir = server
    codes = maildir_enrolment_codes(maildir)
    identity = identity_pb2_grpc.IdentityServiceStub(channel)
    custody = custody_pb2_grpc.CustodyServiceStub(channel)
    notifications = notification_pb2_grpc.NotificationServiceStub(channel)
    _, sender_token = register_company(
        identity, codes, "bs", "Bailleur SARL", "gestion@bailleur.example"
    )
    recipient, recipient_token = register_company(
        identity, codes, "br", "Dest SA", "courrier@dest.example"
    )
    as_sender = (("authorization", f"Bearer {sender_token}"),)
    as_recipient = (("authorization", f"Bearer {recipient_token}"),)
    letter = deposit_letter(custody, sender_token, recipient, "bounce-1")

    def state() -> int:
        request = custody_pb2.GetLetterRequest(name=letter.name)
        return custody.GetLetter(request, metadata=as_sender).state

    assert wait_for(lambda: state() == common_pb2.LETTER_STATE_NOTIFIED, timeout=30)
    (notice,) = [m for m in mailbox.Maildir(maildir) if m["To"] == "courrier@dest.example"]
    # A delay is noted, nothing more.
    delayed = notifications.RecordBounce(
        notification_pb2.RecordBounceRequest(
            delivery_status_notification=_returned(notice["Message-ID"], "delayed", "4.4.1")
        )
    )
    assert delayed.delivery_state == notification_pb2.DELIVERY_STATE_SENT
    assert state() == common_pb2.LETTER_STATE_NOTIFIED
    returned = notifications.RecordBounce(
        notification_pb2.RecordBounceRequest(
            delivery_status_notification=_returned(notice["Message-ID"])
        )
    )
    assert returned.delivery_state == notification_pb2.DELIVERY_STATE_BOUNCED
    assert returned.kind == notification_pb2.NOTIFICATION_KIND_LETTER_WAITING
    assert "mailbox unknown" in returned.last_error
    assert state() == common_pb2.LETTER_STATE_NOTIFICATION_FAILED
    evidence = custody.ListEvidence(
        custody_pb2.ListEvidenceRequest(parent=letter.name), metadata=as_sender
    ).evidence
    assert evidence[-1].event == common_pb2.EVIDENCE_EVENT_NOTIFICATION_FOR_ACCEPTANCE_FAILURE
    verify_seal(evidence[-1], signer_process, tmp_path)
    # Again: the same answer, no second evidence.
    notifications.RecordBounce(
        notification_pb2.RecordBounceRequest(
            delivery_status_notification=_returned(notice["Message-ID"])
        )
    )
    assert len(
        custody.ListEvidence(
            custody_pb2.ListEvidenceRequest(parent=letter.name), metadata=as_sender
        ).evidence
    ) == len(evidence)

    def kinds(metadata: tuple[tuple[str, str], ...]) -> dict[int, int]:
        def listed() -> dict[int, int]:
            reply = notifications.ListNotifications(
                notification_pb2.ListNotificationsRequest(parent=letter.name), metadata=metadata
            )
            return {n.kind: n.delivery_state for n in reply.notifications}

        return listed()

    # The sender is told: proof of deposit and of the failure, both delivered.
    assert wait_for(
        lambda: (
            kinds(as_sender).get(notification_pb2.NOTIFICATION_KIND_DELIVERY_FAILURE)
            == notification_pb2.DELIVERY_STATE_SENT
        ),
        timeout=30,
    )
    assert kinds(as_sender) == {
        notification_pb2.NOTIFICATION_KIND_LETTER_WAITING: notification_pb2.DELIVERY_STATE_BOUNCED,
        notification_pb2.NOTIFICATION_KIND_PROOF_OF_DEPOSIT: notification_pb2.DELIVERY_STATE_SENT,
        notification_pb2.NOTIFICATION_KIND_DELIVERY_FAILURE: notification_pb2.DELIVERY_STATE_SENT,
        # Reminders wait for their day; they will be dropped, the letter being final.
        notification_pb2.NOTIFICATION_KIND_REMINDER: notification_pb2.DELIVERY_STATE_PENDING,
    }
    # The recipient sees only the messages addressed to them.
    assert set(kinds(as_recipient)) == {
        notification_pb2.NOTIFICATION_KIND_LETTER_WAITING,
        notification_pb2.NOTIFICATION_KIND_REMINDER,
    }
    for bad, field in (
        (b"not a report", "delivery_status_notification"),
        (_returned("<someone-else@example.org>"), "message_id"),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            notifications.RecordBounce(
                notification_pb2.RecordBounceRequest(delivery_status_notification=bad)
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (refused.value.details() or "")


def _follow(
    stub: notification_pb2_grpc.NotificationServiceStub, token: str, cursor: str, count: int
) -> list[notification_pb2.LetterEvent]:
    """Reads ``count`` events from ``cursor``, then hangs up (a disconnect)."""
    call = stub.StreamLetterEvents(
        notification_pb2.StreamLetterEventsRequest(cursor=cursor),
        metadata=(("authorization", f"Bearer {token}"),),
        timeout=30,
    )
    events = []
    for event in call:
        events.append(event)
        if len(events) == count:
            call.cancel()
            break
    return events


def test_the_event_stream_resumes_from_its_cursor_with_no_gap_and_no_repeat(
    server: tuple[grpc.Channel, Path],
) -> None:
    channel, maildir = server
    codes = maildir_enrolment_codes(maildir)
    identity = identity_pb2_grpc.IdentityServiceStub(channel)
    custody = custody_pb2_grpc.CustodyServiceStub(channel)
    stream = notification_pb2_grpc.NotificationServiceStub(channel)
    _, sender = register_company(identity, codes, "es", "Bailleur SARL", "gestion@bailleur.example")
    recipient, recipient_token = register_company(
        identity, codes, "er", "Dest SA", "courrier@dest.example"
    )
    _, other_sender = register_company(identity, codes, "eo", "Autre SAS", "autre@autre.example")
    as_recipient = (("authorization", f"Bearer {recipient_token}"),)
    first_letter = deposit_letter(custody, sender, recipient, "e-1")
    second_letter = deposit_letter(custody, sender, recipient, "e-2")
    deposit_letter(custody, other_sender, recipient, "e-3")  # not this sender's: never streamed
    wait_notified(custody, [first_letter, second_letter], as_recipient)
    before = _follow(stream, sender, "", 3)
    custody.AcceptLetter(
        custody_pb2.AcceptLetterRequest(name=first_letter.name), metadata=as_recipient
    )
    custody.RefuseLetter(
        custody_pb2.RefuseLetterRequest(name=second_letter.name), metadata=as_recipient
    )
    list(
        custody.DownloadLetterContent(
            custody_pb2.DownloadLetterContentRequest(name=first_letter.name),
            metadata=as_recipient,
        )
    )
    after = _follow(stream, sender, before[-1].cursor, 4)  # resumed after a disconnect
    whole = _follow(stream, sender, "", 7)
    assert [(e.cursor, e.letter, e.event) for e in before + after] == [
        (e.cursor, e.letter, e.event) for e in whole
    ]
    cursors = [int(e.cursor) for e in whole]
    assert cursors == sorted(set(cursors))
    seen = sorted((e.letter, e.event) for e in whole)
    events = common_pb2
    assert seen == sorted(
        [
            (first_letter.name, events.EVIDENCE_EVENT_SUBMISSION_ACCEPTANCE),
            (first_letter.name, events.EVIDENCE_EVENT_NOTIFICATION_FOR_ACCEPTANCE),
            (first_letter.name, events.EVIDENCE_EVENT_CONSIGNMENT_ACCEPTANCE),
            (first_letter.name, events.EVIDENCE_EVENT_CONTENT_HANDOVER),
            (second_letter.name, events.EVIDENCE_EVENT_SUBMISSION_ACCEPTANCE),
            (second_letter.name, events.EVIDENCE_EVENT_NOTIFICATION_FOR_ACCEPTANCE),
            (second_letter.name, events.EVIDENCE_EVENT_CONSIGNMENT_REJECTION),
        ]
    )
    with pytest.raises(grpc.RpcError) as bad:
        _follow(stream, sender, "not-a-cursor", 1)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # One sender holding streams open takes no other sender's: its own are
    # capped (each below has answered, so it is open), the other's opens
    # (once its streams above, cancelled, have ended on the server too).
    request = notification_pb2.StreamLetterEventsRequest(cursor="")
    held = [
        stream.StreamLetterEvents(request, metadata=bearer(other_sender), timeout=30)
        for _ in range(PARTY_STREAMS)
    ]
    try:
        for call in held:
            assert next(call).letter not in (first_letter.name, second_letter.name)
        with pytest.raises(grpc.RpcError) as capped:
            next(stream.StreamLetterEvents(request, metadata=bearer(other_sender), timeout=30))
        assert capped.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_info(capped.value)[0] == "CONCURRENT_CALLS_EXCEEDED"
        assert wait_for(lambda: _opens(stream, sender), timeout=10)
    finally:
        for call in held:
            call.cancel()


def _opens(stub: notification_pb2_grpc.NotificationServiceStub, token: str) -> bool:
    """Whether the party's event stream opens (not capped) and gives an event."""
    try:
        return len(_follow(stub, token, "", 1)) == 1
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:  # type: ignore[attr-defined]
            raise
        return False


def test_a_webhook_created_through_the_api_receives_the_senders_events(
    server: tuple[grpc.Channel, Path],
) -> None:
    channel, maildir = server
    codes = maildir_enrolment_codes(maildir)
    identity = identity_pb2_grpc.IdentityServiceStub(channel)
    custody = custody_pb2_grpc.CustodyServiceStub(channel)
    notifications = notification_pb2_grpc.NotificationServiceStub(channel)
    _, sender = register_company(identity, codes, "ws", "Bailleur SARL", "gestion@bailleur.example")
    recipient, _ = register_company(identity, codes, "wr", "Dest SA", "courrier@dest.example")
    as_sender = (("authorization", f"Bearer {sender}"),)
    with Receiver(failures=0) as receiver:
        webhook = notifications.CreateWebhook(
            notification_pb2.CreateWebhookRequest(request_id="wh", url=receiver.url),
            metadata=as_sender,
        )
        assert len(bytes.fromhex(webhook.secret)) == 32
        listed = notifications.ListWebhooks(
            notification_pb2.ListWebhooksRequest(), metadata=as_sender
        ).webhooks
        assert [w.name for w in listed] == [webhook.name] and not listed[0].secret
        letter = deposit_letter(custody, sender, recipient, "wh-letter")
        # Deposit, then notification: two events, in that order.
        assert wait_for(lambda: len(receiver.received) >= 2, timeout=30)
        notifications.DeleteWebhook(
            notification_pb2.DeleteWebhookRequest(name=webhook.name), metadata=as_sender
        )
    bodies = [json.loads(body) for _, body, _ in receiver.received]
    assert [(b["letter"], b["event"]) for b in bodies[:2]] == [
        (letter.name, "SubmissionAcceptance"),
        (letter.name, "NotificationForAcceptance"),
    ]
    headers, body, _ = receiver.received[0]
    expected = hmac.new(
        bytes.fromhex(webhook.secret),
        headers["X-LRE-Timestamp"].encode() + b"." + body,
        hashlib.sha256,
    ).hexdigest()
    assert headers["X-LRE-Signature"] == f"sha256={expected}"


class KillingInbox(Inbox):
    """Kills ``victim`` as soon as it has handed over a whole message, before
    the SMTP reply reaches it: sent, but not recorded as sent."""

    victim: subprocess.Popen[bytes] | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if self.victim is not None:
            self.victim.kill()
            self.victim.wait()
            self.victim = None
        return reply


def _inbox_codes(inbox: Inbox) -> EnrolmentCodes:
    """Enrolment codes from the e-mails an SMTP inbox received."""

    def code(party: str) -> str:
        def found() -> list[str]:
            return [c for m in inbox.messages if (c := enrolment_code_in(m, party))]

        assert wait_for(lambda: bool(found()), timeout=30)
        return found()[-1]

    return code


def test_a_dispatcher_killed_between_send_and_record_resends_the_same_message(
    signer_process: SignerProcess, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'lre.db'}"
    port = free_port()
    transport = f"smtp://127.0.0.1:{port}"
    # A message the killed server held is sent again once its claim's lease
    # (outbox_lease_s) runs out.
    quick = functools.partial(
        server_process, outbox_interval_s="0.2", outbox_lease_s="4", smtp_timeout_s="1"
    )
    inbox = KillingInbox(port)
    with inbox:
        with quick(signer_process, tmp_path, database, mail_transport=transport) as first:
            with grpc.insecure_channel(first.address) as channel:
                identity = identity_pb2_grpc.IdentityServiceStub(channel)
                custody = custody_pb2_grpc.CustodyServiceStub(channel)
                codes = _inbox_codes(inbox)
                _, sender = register_company(
                    identity, codes, "ks", "Bailleur SARL", "gestion@bailleur.example"
                )
                recipient, _ = register_company(
                    identity, codes, "kr", "Dest SA", "courrier@dest.example"
                )
                inbox.messages.clear()  # the enrolment codes, read
                inbox.victim = first.process
                letter = deposit_letter(custody, sender, recipient, "k-1")
            assert wait_for(lambda: first.process.poll() is not None, timeout=30)
        assert len(inbox.messages) == 1
        killed = inbox.messages[0]["Message-ID"]
        # What the kill left claimed: the message being sent, and the letter's
        # other message when the same claim took it (it may not have yet).
        engine = create_engine(database)
        with engine.connect() as db:
            stranded = db.scalar(
                select(func.count())
                .select_from(models.OutboxMessage)
                .where(models.OutboxMessage.state == OutboxState.SENDING)
            )
        engine.dispose()
        assert stranded in (1, 2), stranded
        with (
            quick(signer_process, tmp_path, database, mail_transport=transport) as second,
            grpc.insecure_channel(second.address) as channel,
        ):
            custody = custody_pb2_grpc.CustodyServiceStub(channel)
            as_sender = (("authorization", f"Bearer {sender}"),)

            def notified_and_proven() -> bool:
                state = custody.GetLetter(
                    custody_pb2.GetLetterRequest(name=letter.name), metadata=as_sender
                ).state
                return state == common_pb2.LETTER_STATE_NOTIFIED and len(inbox.messages) >= 3

            assert wait_for(notified_and_proven, timeout=30)
            evidence = custody.ListEvidence(
                custody_pb2.ListEvidenceRequest(parent=letter.name), metadata=as_sender
            ).evidence
            # The resend shows, on the message and in the second server's counter.
            listed = notification_pb2_grpc.NotificationServiceStub(channel).ListNotifications(
                notification_pb2.ListNotificationsRequest(parent=letter.name), metadata=as_sender
            )
            resent = {n.message_id: (n.attempts, n.resends) for n in listed.notifications}
            metrics = urllib.request.urlopen(second.metrics_url, timeout=5).read().decode()
    ids = [m["Message-ID"] for m in inbox.messages]
    # The interrupted message came twice under one Message-ID; the other once.
    assert ids.count(killed) == 2 and len(ids) == 3 and len(set(ids)) == 2
    assert resent[killed] == (2, 1)  # the sender lists every message of its letter
    resends = re.findall(r"^lre_notifications_resent_total\{[^}]*\} (\S+)$", metrics, re.M)
    assert sum(float(v) for v in resends) == stranded  # each message the first server held
    assert [e.event for e in evidence].count(
        common_pb2.EVIDENCE_EVENT_NOTIFICATION_FOR_ACCEPTANCE
    ) == 1


def test_inclusion_proofs_from_the_api_verify_and_verify_log_passes(
    server: tuple[grpc.Channel, Path], signer_process: SignerProcess, tmp_path: Path
) -> None:
    channel, maildir = server
    codes = maildir_enrolment_codes(maildir)
    identity = identity_pb2_grpc.IdentityServiceStub(channel)
    custody = custody_pb2_grpc.CustodyServiceStub(channel)
    _, sender = register_company(identity, codes, "ls", "Bailleur SARL", "gestion@bailleur.example")
    recipient, recipient_token = register_company(
        identity, codes, "lr", "Dest SA", "courrier@dest.example"
    )
    as_sender = (("authorization", f"Bearer {sender}"),)
    letter = deposit_letter(custody, sender, recipient, "log-1")
    wait_notified(custody, [letter], as_sender)
    custody.AcceptLetter(
        custody_pb2.AcceptLetterRequest(name=letter.name),
        metadata=(("authorization", f"Bearer {recipient_token}"),),
    )
    evidence = custody.ListEvidence(
        custody_pb2.ListEvidenceRequest(parent=letter.name), metadata=as_sender
    ).evidence

    def sealed_with_all() -> bool:
        try:
            head = custody.SealTreeHead(custody_pb2.SealTreeHeadRequest())
            custody.GetInclusionProof(
                custody_pb2.GetInclusionProofRequest(evidence=evidence[-1].name),
                metadata=as_sender,
            )
        except grpc.RpcError:
            return False
        return head.tree_size >= len(evidence)

    assert wait_for(sealed_with_all, timeout=30)  # the sequencer runs every 0.2 s
    for item in evidence:
        proof = custody.GetInclusionProof(
            custody_pb2.GetInclusionProofRequest(evidence=item.name), metadata=as_sender
        )
        head = proof.tree_head
        assert rfc9162.verify_inclusion(
            proof.leaf, proof.leaf_index, head.tree_size, list(proof.hashes), head.root_hash
        )
        leaf = json.loads(proof.leaf)
        assert leaf["evidence"] == item.name
        assert leaf["documentSha256"] == hashlib.sha256(item.document).hexdigest()
        assert leaf["sealSha256"] == hashlib.sha256(item.seal).hexdigest()
    sealed = tmp_path / "head.p7m"
    sealed.write_bytes(head.seal)
    verified = openssl(
        "cms", "-verify", "-inform", "DER", "-in", sealed, "-CAfile", signer_process.root_ca
    )
    assert verified.returncode == 0 and verified.stdout.encode() == head.document
    assert json.loads(head.document)["rootHash"] == head.root_hash.hex()
    checked = subprocess.run(
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
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "log verified" in checked.stdout and "PROBLEM" not in checked.stdout


def test_no_secret_or_content_reaches_the_logs_of_a_whole_lifecycle(
    server: tuple[grpc.Channel, Path], signer_process: SignerProcess, tmp_path: Path
) -> None:
    channel, maildir = server
    codes = maildir_enrolment_codes(maildir)
    identity = identity_pb2_grpc.IdentityServiceStub(channel)
    custody = custody_pb2_grpc.CustodyServiceStub(channel)
    notifications = notification_pb2_grpc.NotificationServiceStub(channel)
    _, sender = register_company(identity, codes, "ss", "Bailleur SARL", "gestion@bailleur.example")
    recipient, recipient_token = register_company(
        identity, codes, "sr", "Dest SA", "courrier@dest.example"
    )
    as_recipient = (("authorization", f"Bearer {recipient_token}"),)
    webhook = notifications.CreateWebhook(
        notification_pb2.CreateWebhookRequest(request_id="s-wh", url="https://localhost:1/x"),
        metadata=(("authorization", f"Bearer {sender}"),),
    )
    letter = deposit_letter(custody, sender, recipient, "s-1")
    wait_notified(custody, [letter], as_recipient)
    custody.AcceptLetter(custody_pb2.AcceptLetterRequest(name=letter.name), metadata=as_recipient)
    content = b"".join(
        c.data
        for c in custody.DownloadLetterContent(
            custody_pb2.DownloadLetterContentRequest(name=letter.name), metadata=as_recipient
        )
    )
    assert content == CONTENT + ANNEX
    # A failed login, whose password must not be echoed either.
    with pytest.raises(grpc.RpcError):
        identity.CreateSession(
            identity_pb2.CreateSessionRequest(
                party=recipient, password="hunter2-not-the-password", totp_code="000000"
            )
        )
    # The error paths: refused personal data, a deposit refused mid-stream, a cancelled one.
    refused = {  # what each refused request carries that is personal
        "a name with a NUL": ("Zoeprivate", {"given_name": "Zoeprivate\x00"}),
        "an overlong name": ("Longprivate", {"family_name": "Longprivate" * 20}),
        "two addresses as one": ("victimprivate", {"email": "root,victimprivate@example.org"}),
    }
    for _, values in refused.values():
        fields = {"given_name": "Camille", "family_name": "Martin", **values}
        with pytest.raises(grpc.RpcError) as raised:
            identity.CreateParty(
                identity_pb2.CreatePartyRequest(
                    request_id="e-1",
                    party=identity_pb2.Party(
                        kind=identity_pb2.PARTY_KIND_NATURAL_PERSON,
                        email=fields.get("email", "camille@example.org"),
                        given_name=fields["given_name"],
                        family_name=fields["family_name"],
                    ),
                )
            )
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as raised:
        deposit_letter(
            custody, sender, recipient, "s-2", [("Privatefile\x00.pdf", "text/plain", b"x")]
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    cancelled = custody.DepositLetter.future(
        iter([]), metadata=(("authorization", f"Bearer {sender}"),)
    )
    cancelled.cancel()
    logs = (tmp_path / "server.log").read_text() + signer_process.log.read_text()
    assert '"method": "/lre.v1.CustodyService/DownloadLetterContent"' in logs  # logs were written
    secrets_ = {
        "sender session token": sender,
        "recipient session token": recipient_token,
        "webhook key": webhook.secret,
        "server secrets key": (tmp_path / "server.key").read_text().strip(),
        "token PIN": signer_process.paths.pin_file.read_text().strip(),
        "a wrong password": "hunter2-not-the-password",
        "letter content": "lettre de resiliation",
        "annex content": "etat des lieux",
        **{name: sentinel for name, (sentinel, _) in refused.items()},
        "a refused file name": "Privatefile",
    }
    assert "Traceback" not in logs
    leaked = [name for name, value in secrets_.items() if value and value in logs]
    assert not leaked, leaked
    assert not re.search(r"walkthrough [0-9a-f-]{36}", logs)  # register_party's passwords


def test_an_emailed_code_reaches_the_mailbox_and_opens_one_session(
    server: tuple[grpc.Channel, Path], tmp_path: Path
) -> None:
    channel, maildir = server
    codes = maildir_enrolment_codes(maildir)
    identity = identity_pb2_grpc.IdentityServiceStub(channel)
    party = create_party(identity, "camille")
    identity.RecordDocumentCheck(
        identity_pb2.RecordDocumentCheckRequest(
            party=party.name,
            document_type="passport",
            document_number="19AB12345",
            document_expire_time=expires_in(400),
            operator_id="op-7",
        ),
        timeout=10,
    )
    password = "correct horse battery staple"
    identity.EnrollCredentials(
        identity_pb2.EnrollCredentialsRequest(
            party=party.name, enrolment_code=codes(party.name), password=password
        )
    )
    request = identity_pb2.SendEmailCodeRequest(party=party.name, password=password)
    with pytest.raises(grpc.RpcError) as raised:  # only for the party: its password
        identity.SendEmailCode(identity_pb2.SendEmailCodeRequest(party=party.name), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    sent = identity.SendEmailCode(request, timeout=10)
    assert sent.code_id and sent.expire_time.seconds > time.time()
    with pytest.raises(grpc.RpcError) as raised:  # at most one a minute
        identity.SendEmailCode(request, timeout=10)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    def delivered() -> list[email.message.Message]:
        return [
            email.message_from_bytes(m.as_bytes())
            for m in mailbox.Maildir(maildir)
            if m["To"] == "camille@example.org"
        ]

    assert wait_for(lambda: len(delivered()) == 1, timeout=30)
    (message,) = delivered()
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    payload = text.get_payload(decode=True)
    assert isinstance(payload, bytes)
    (code,) = set(re.findall(r"\b(\d{6})\b", payload.decode()))

    def log_in() -> identity_pb2.Session:
        return identity.CreateSession(
            identity_pb2.CreateSessionRequest(
                party=party.name,
                password=password,
                email_code=identity_pb2.EmailCode(code_id=sent.code_id, code=code),
            ),
            timeout=10,
        )

    session = log_in()
    assert session.token and session.level == identity_pb2.ASSURANCE_LEVEL_SUBSTANTIAL
    with pytest.raises(grpc.RpcError) as raised:  # good once
        log_in()
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as raised:
        identity.CreateSession(
            identity_pb2.CreateSessionRequest(
                party=party.name,
                password=password,
                email_code=identity_pb2.EmailCode(code_id="not-an-id", code=code),
            ),
            timeout=10,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert code not in (tmp_path / "server.log").read_text()
