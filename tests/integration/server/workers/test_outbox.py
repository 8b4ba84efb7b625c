"""The outbox dispatcher against a real SMTP server (aiosmtpd on 127.0.0.1),
the real signer, and SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import select

from lre.server.domain.letters import EvidenceEvent, LetterState, OutboxState
from lre.server.domain.window import AcceptanceWindow
from lre.server.services.notification import NotificationPolicy, NotificationService
from lre.server.services.proofs import StoredProofs
from lre.server.storage import db, models
from lre.server.workers.outbox import OutboxDispatcher
from tests.support.mail import Inbox, subject_of, text_of
from tests.support.pki import openssl
from tests.support.services import KEY
from tests.support.signer import SignerProcess
from tests.support.world import SENDER_COMPANY, SENDER_EMAIL, World

# Enough letters that a dispatcher drains many batches: with the mail server
# down for the first part, 150 letters deposited (300 messages).
LETTERS_WHILE_SMTP_DOWN = 150


def test_the_recipient_is_told_everything_but_the_sender(world: World, smtp_port: int) -> None:
    letter = world.deposit()
    world.clock.advance(seconds=2)
    with Inbox(smtp_port) as inbox:
        assert world.dispatcher.dispatch_one()
        assert world.dispatcher.dispatch_one()  # the sender's proof of deposit
        assert not world.dispatcher.dispatch_one()
    ((index, message),) = [
        (i, m) for i, m in enumerate(inbox.messages) if m["To"] == "courrier@destinataire.example"
    ]
    body = text_of(message)
    window = AcceptanceWindow(world.clock.now)
    code = world.notifications.verification_code(letter.id)
    assert message["To"] == "courrier@destinataire.example"
    assert letter.reference in subject_of(message) and letter.reference in body
    assert code in body
    assert window.last_day.strftime("%d %B %Y") in body  # English deadline
    assert "heure de Paris" in body and "Paris time" in body  # French and English
    assert "https://portal.lre.test" in body
    # The sender kept hidden until acceptance is R53-3 I, in both languages and both parts.
    assert body.count("R53-3") == 4 and "R53-2" not in body
    assert message.get_content_type() == "multipart/alternative"
    # Nothing that identifies the sender, anywhere in the message as sent.
    raw = inbox.raw[index].decode("utf-8", "replace").lower() + body.lower()
    for secret in (SENDER_COMPANY, SENDER_EMAIL, "zephyrin"):
        assert secret.lower() not in raw
    # The letter is notified, its window open, its evidence sealed.
    notified = world.letter(letter.id)
    assert notified.state is LetterState.NOTIFIED
    assert notified.acceptance_deadline == window.closes_at
    assert world.events(letter.id) == [
        EvidenceEvent.SUBMISSION_ACCEPTANCE,
        EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE,
    ]
    # The recipient can check the e-mail is genuine; a forged code or reference is not.
    assert world.notifications.verify(letter.reference, code).genuine
    # As a person may type it: without its dash, in lower case, spaced.
    for typed in (code.replace("-", ""), code.lower(), f" {code[:5]} {code[6:]} "):
        assert world.notifications.verify(letter.reference, typed).genuine, typed
    assert (
        world.notifications.verify(letter.reference, code).acceptance_deadline == window.closes_at
    )
    assert not world.notifications.verify(letter.reference, "AAAAA-AAAAA").genuine
    assert not world.notifications.verify("NOSUCHREF", code).genuine


def test_smtp_down_then_back_every_notification_arrives_once(world: World, smtp_port: int) -> None:
    # Delivery at 300 letters: the proofs of deposit go without their PDF
    # here (a rendering and a signature each would multiply the time on this
    # machine ten minutes); proof PDFs in e-mails are checked by pdfsig in
    # tests/integration/server/services/custody/test_evidence_v2.py.
    world.notifications = NotificationService(
        world.stores,
        NotificationPolicy(KEY, "LRE <notifications@lre.test>", "https://portal.lre.test"),
        StoredProofs(world.stores, lambda document, seal: b"%PDF- not rendered", world.clock),
    )
    world.dispatcher = world.make_dispatcher(smtp_port)
    letters = [world.deposit() for _ in range(LETTERS_WHILE_SMTP_DOWN)]
    # The server is down: every message (notice and proof of deposit) is deferred, none lost.
    for _ in range(2 * len(letters)):
        assert world.dispatcher.dispatch_one()
    assert not world.dispatcher.dispatch_one()  # nothing due before the retry delay
    with db.sessions(world.engine)() as session:
        pending = session.query(models.OutboxMessage).filter_by(state=OutboxState.PENDING).all()
        assert len(pending) == 2 * len(letters) and {m.attempts for m in pending} == {1}
        message_ids = {m.id for m in pending}
    world.clock.advance(seconds=31)
    with Inbox(smtp_port) as inbox:
        while world.dispatcher.dispatch_one():
            pass
    assert len(inbox.messages) == 2 * len(letters)
    assert sorted(m["Message-ID"] for m in inbox.messages) == sorted(
        f"<{i}@lre.test>" for i in message_ids
    )
    assert all(world.letter(letter.id).state is LetterState.NOTIFIED for letter in letters)


def test_a_refused_address_ends_in_a_failure_evidence(world: World, smtp_port: int) -> None:
    letter = world.deposit()
    world.clock.advance(seconds=2)
    with Inbox(smtp_port, refuse=True):
        while world.dispatcher.dispatch_one():
            pass
    assert world.letter(letter.id).state is LetterState.NOTIFICATION_FAILED
    assert world.events(letter.id) == [
        EvidenceEvent.SUBMISSION_ACCEPTANCE,
        EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE_FAILURE,
    ]
    # Its evidence recorded, nothing more is due for the notice.
    with db.sessions(world.engine)() as session:
        notice = session.scalars(
            select(models.OutboxMessage).where(models.OutboxMessage.kind == "letter_waiting")
        ).one()
        assert (notice.state, notice.next_attempt_time) == (OutboxState.FAILED, None)


def test_two_dispatchers_send_each_message_once(world: World, smtp_port: int) -> None:
    letters = [world.deposit() for _ in range(40)]
    second = world.make_dispatcher(smtp_port)
    with Inbox(smtp_port) as inbox:

        def drain(dispatcher: OutboxDispatcher) -> None:
            while dispatcher.dispatch_one():
                pass

        threads = [threading.Thread(target=drain, args=(d,)) for d in (world.dispatcher, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(m["Message-ID"] for m in inbox.messages) == sorted(
        set(m["Message-ID"] for m in inbox.messages)
    )
    assert len(inbox.messages) == 80  # a notice and a proof of deposit per letter
    assert all(
        world.events(letter.id).count(EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE) == 1
        for letter in letters
    )


def test_the_sender_gets_each_proof_and_the_recipient_reminders_until_an_answer(
    world: World, smtp_port: int, signer_process: SignerProcess, tmp_path: Path
) -> None:
    answered, ignored = world.notified(2, smtp_port)
    world.clock.advance(days=3)
    world.decisions.accept(world.recipient_session(), answered.id)
    with Inbox(smtp_port) as inbox:
        for days in (5, 6):  # days 8 and 14 of the window: both reminders are due
            world.clock.advance(days=days)
            world.drain()
        world.clock.advance(days=3)  # the window has closed
        assert world.expiry.expire_due() == 1
        world.drain()
    to_recipient = [m for m in inbox.messages if m["To"] == "courrier@destinataire.example"]
    # The recipient's copy of their acceptance, then the reminders.
    assert [subject_of(m) for m in to_recipient[:1]] == [
        f"Preuve d'acceptation / Proof of acceptance - {answered.reference}"
    ]
    to_recipient = to_recipient[1:]
    assert len(to_recipient) == 2  # days 7 and 13, for the letter still waiting only
    for message in to_recipient:
        subject = subject_of(message)
        assert subject.startswith("Rappel / Reminder") and ignored.reference in subject
        assert "vous attend toujours" in text_of(message) and "still waiting" in text_of(message)
        assert SENDER_COMPANY.lower() not in message.as_string().lower()
    with db.sessions(world.engine)() as session:
        assert (
            not session.query(models.OutboxMessage)
            .filter_by(letter_id=answered.id, kind="reminder")
            .count()
        )

    to_sender = {subject_of(m): m for m in inbox.messages if m["To"] == SENDER_EMAIL}
    assert sorted(to_sender) == sorted(
        [
            f"Preuve d'acceptation / Proof of acceptance - {answered.reference}",
            f"Preuve de non-réclamation / Proof of non-claim - {ignored.reference}",
        ]
    )
    non_claim = to_sender[f"Preuve de non-réclamation / Proof of non-claim - {ignored.reference}"]
    kinds = [p.get_content_type() for p in non_claim.walk()]
    assert "text/plain" in kinds and "text/html" in kinds  # both, French and English
    attachments: dict[str, bytes] = {}
    for part in non_claim.walk():
        payload = part.get_payload(decode=True)
        if part.get_filename() and isinstance(payload, bytes):
            attachments[str(part.get_filename())] = payload
    document = attachments[f"AcceptanceRejectionExpiry-{ignored.reference}.json"]
    sealed = tmp_path / "proof.p7m"
    sealed.write_bytes(attachments[f"AcceptanceRejectionExpiry-{ignored.reference}.p7m"])
    verify = openssl(
        "cms", "-verify", "-inform", "DER", "-in", sealed, "-CAfile", signer_process.root_ca
    )
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.encode() == document
    assert b"AcceptanceRejectionExpiry" in document
