"""The outbox dispatcher against a real SMTP server (aiosmtpd on 127.0.0.1),
the real signer, and SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.header
import threading
import uuid
from email.message import Message
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from lre.server.domain import identity
from lre.server.domain.errors import FailedPrecondition, InvalidTransition
from lre.server.domain.identity import AssuranceLevel, FactorCategory
from lre.server.domain.letters import EvidenceEvent, LetterState, OutboxState
from lre.server.domain.records import LetterRecord
from lre.server.domain.window import AcceptanceWindow
from lre.server.services.custody import CustodyPolicy
from lre.server.storage import db, models
from lre.server.workers.outbox import OutboxDispatcher
from tests.conftest import SignerProcess
from tests.integration.workers.conftest import SENDER_COMPANY, SENDER_EMAIL, Inbox, World
from tests.support import openssl

# Issue 6: with the mail server down for the first part, 1,000 letters deposited.
LETTERS_WHILE_SMTP_DOWN = 1000


def _text(message: Message) -> str:
    texts = []
    for part in message.walk():
        payload = part.get_payload(decode=True)
        if part.get_content_maintype() == "text" and isinstance(payload, bytes):
            texts.append(payload.decode())
    return "\n".join(texts)


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
    body = _text(message)
    window = AcceptanceWindow(world.clock.now)
    code = world.notifications.verification_code(letter.id)
    assert message["To"] == "courrier@destinataire.example"
    assert letter.reference in _subject(message) and letter.reference in body
    assert code in body
    assert window.last_day.strftime("%d %B %Y") in body  # English deadline
    assert "heure de Paris" in body and "Paris time" in body  # French and English
    assert "https://portal.lre.test" in body
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
    assert (
        world.notifications.verify(letter.reference, code).acceptance_deadline == window.closes_at
    )
    assert not world.notifications.verify(letter.reference, "AAAAA-AAAAA").genuine
    assert not world.notifications.verify("NOSUCHREF", code).genuine


def test_smtp_down_then_back_every_notification_arrives_once(world: World, smtp_port: int) -> None:
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


def _recipient_session(world: World) -> identity.Session:
    return identity.Session(
        party_id=str(world.recipient.id),
        level=AssuranceLevel.SUBSTANTIAL,
        factors=frozenset({FactorCategory.KNOWLEDGE, FactorCategory.POSSESSION}),
        one_time_element=True,
        authenticated_at=world.clock.now,
        expires_at=world.clock.now + dt.timedelta(minutes=30),
    )


def _notified(world: World, count: int, smtp_port: int) -> list[LetterRecord]:
    letters = [world.deposit() for _ in range(count)]
    world.clock.advance(seconds=2)
    with Inbox(smtp_port):
        while world.dispatcher.dispatch_one():
            pass
    return letters


def test_non_claim_is_proven_when_the_window_closes_and_not_before(
    world: World, smtp_port: int
) -> None:
    (letter,) = _notified(world, 1, smtp_port)
    closes_at = world.letter(letter.id).acceptance_deadline
    assert closes_at is not None
    world.clock.now = closes_at - dt.timedelta(microseconds=1)
    assert world.expiry.expire_due() == 0
    delays_before = _sample("lre_non_claim_proof_delay_seconds_count")
    within_3h_before = _sample("lre_non_claim_proof_delay_seconds_bucket", le="14400.0")
    late_before = _sample("lre_non_claim_proofs_late_total")
    world.clock.now = closes_at + dt.timedelta(hours=3)
    assert world.expiry.expire_due() == 1
    assert world.expiry.expire_due() == 0
    assert _sample("lre_non_claim_proof_delay_seconds_count") == delays_before + 1
    assert _sample("lre_non_claim_proof_delay_seconds_bucket", le="14400.0") == (
        within_3h_before + 1
    )
    assert _sample("lre_non_claim_proofs_late_total") == late_before  # on time
    assert _sample("lre_non_claim_oldest_pending_seconds") == 0
    expired = world.letter(letter.id)
    assert expired.state is LetterState.EXPIRED and expired.decision_time == closes_at
    with db.sessions(world.engine)() as session:
        proof = (
            session.query(models.Evidence)
            .filter_by(letter_id=letter.id, event=EvidenceEvent.ACCEPTANCE_REJECTION_EXPIRY)
            .one()
        )
    assert proof.event_time == closes_at  # dated at the end of the window, not at the sweep
    with pytest.raises(InvalidTransition):
        world.decisions.accept(_recipient_session(world), letter.id)


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_proof_sealed_after_the_day_following_the_window_counts_as_late(
    world: World, smtp_port: int
) -> None:
    first, _ = _notified(world, 2, smtp_port)
    closes_at = world.letter(first.id).acceptance_deadline
    assert closes_at is not None
    window = AcceptanceWindow(world.letter(first.id).notification_time)  # type: ignore[arg-type]
    late_before = _sample("lre_non_claim_proofs_late_total")
    # The sweeper was down: it comes back after the legal limit, one letter at a time.
    world.clock.now = window.non_claim_proof_due + dt.timedelta(minutes=5)
    assert world.expiry.expire_due(batch=1) == 1
    assert _sample("lre_non_claim_proofs_late_total") == late_before + 1
    # The other letter has waited since the window closed, and the gauge says so.
    waited = (world.clock.now - closes_at).total_seconds()
    assert _sample("lre_non_claim_oldest_pending_seconds") == waited
    assert world.expiry.expire_due() == 1
    assert _sample("lre_non_claim_oldest_pending_seconds") == 0


def test_a_decision_just_before_the_deadline_beats_the_sweeper(
    world: World, smtp_port: int
) -> None:
    (letter,) = _notified(world, 1, smtp_port)
    closes_at = world.letter(letter.id).acceptance_deadline
    assert closes_at is not None
    world.clock.now = closes_at - dt.timedelta(seconds=1)
    world.decisions.accept(_recipient_session(world), letter.id)
    world.clock.now = closes_at + dt.timedelta(days=1)
    assert world.expiry.expire_due() == 0
    assert world.letter(letter.id).state is LetterState.ACCEPTED


def test_concurrent_sweepers_give_each_letter_one_outcome(world: World, smtp_port: int) -> None:
    letters = _notified(world, 30, smtp_port)
    world.clock.advance(days=17)
    swept: list[int] = []

    def sweep() -> None:
        while (count := world.expiry.expire_due(batch=4)) > 0:
            swept.append(count)

    threads = [threading.Thread(target=sweep) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(swept) == 30
    for letter in letters:
        assert world.events(letter.id).count(EvidenceEvent.ACCEPTANCE_REJECTION_EXPIRY) == 1
        assert world.letter(letter.id).state is LetterState.EXPIRED


def test_content_is_deleted_after_its_retention_but_evidence_stays(
    world: World, smtp_port: int
) -> None:
    kept, held, pending = _notified(world, 3, smtp_port)
    for letter in (kept, held):
        world.decisions.accept(_recipient_session(world), letter.id)
    with db.sessions(world.engine).begin() as session:
        held_row = session.get(models.Letter, held.id)
        assert held_row is not None
        held_row.legal_hold = True  # SetLegalHold needs the operator role of issue 8
    world.clock.advance(days=364)
    assert world.retention.purge_content() == 0
    world.clock.advance(days=2)
    assert world.retention.purge_content() == 1
    with db.sessions(world.engine)() as session:
        chunks = {
            letter.id: session.query(models.ContentChunk).filter_by(letter_id=letter.id).count()
            for letter in (kept, held, pending)
        }
        purged = session.get(models.Letter, kept.id)
        assert (
            purged is not None
            and purged.wrapped_key is None
            and purged.content_purge_time == world.clock.now
        )
    assert chunks == {kept.id: 0, held.id: 1, pending.id: 1}  # held: legal hold; pending: not final
    assert world.events(kept.id)  # the evidence stays
    fresh = dataclasses.replace(_recipient_session(world), authenticated_at=world.clock.now)
    with pytest.raises(FailedPrecondition, match="no longer kept"):
        world.decisions.download(fresh, kept.id)


def test_a_retention_shorter_than_the_legal_window_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 30 days"):
        CustodyPolicy("p", 1, 1, "EUR", content_retention=dt.timedelta(days=10))


def test_the_same_request_id_sent_four_times_at_once_gives_one_letter(world: World) -> None:
    barrier = threading.Barrier(4)
    letters: list[uuid.UUID] = []

    def deposit() -> None:
        barrier.wait()
        letters.append(world.deposit("the-same-request").id)

    threads = [threading.Thread(target=deposit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(letters) == 4 and len(set(letters)) == 1
    with db.sessions(world.engine)() as session:
        assert session.query(models.Letter).filter_by(request_id="the-same-request").count() == 1
        assert session.query(models.Charge).filter_by(letter_id=letters[0]).count() == 1
        # One notice for the recipient, one proof of deposit for the sender.
        assert session.query(models.OutboxMessage).filter_by(letter_id=letters[0]).count() == 2


def _subject(message: Message) -> str:
    return str(email.header.make_header(email.header.decode_header(message["Subject"])))


def _drain(world: World) -> None:
    while world.dispatcher.dispatch_one():
        pass


def test_the_sender_gets_each_proof_and_the_recipient_reminders_until_an_answer(
    world: World, smtp_port: int, signer_process: SignerProcess, tmp_path: Path
) -> None:
    answered, ignored = _notified(world, 2, smtp_port)
    world.clock.advance(days=3)
    world.decisions.accept(_recipient_session(world), answered.id)
    with Inbox(smtp_port) as inbox:
        for days in (5, 6):  # days 8 and 14 of the window: both reminders are due
            world.clock.advance(days=days)
            _drain(world)
        world.clock.advance(days=3)  # the window has closed
        assert world.expiry.expire_due() == 1
        _drain(world)
    to_recipient = [m for m in inbox.messages if m["To"] == "courrier@destinataire.example"]
    assert len(to_recipient) == 2  # days 7 and 13, for the letter still waiting only
    for message in to_recipient:
        assert _subject(message).startswith("Rappel / Reminder") and ignored.reference in _subject(
            message
        )
        assert "vous attend toujours" in _text(message) and "still waiting" in _text(message)
        assert SENDER_COMPANY.lower() not in message.as_string().lower()
    with db.sessions(world.engine)() as session:
        assert (
            not session.query(models.OutboxMessage)
            .filter_by(letter_id=answered.id, kind="reminder")
            .count()
        )

    to_sender = {_subject(m): m for m in inbox.messages if m["To"] == SENDER_EMAIL}
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
