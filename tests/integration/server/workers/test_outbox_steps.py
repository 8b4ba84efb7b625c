"""The outbox's claim, send and record steps, on SQLite and
PostgreSQL, against a real SMTP server (aiosmtpd) and the real signer; the
signer "down" is a client of a port nothing listens on."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import uuid
from collections.abc import Callable
from email import message_from_bytes
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import cast

import pytest
from alembic import command
from sqlalchemy import event, select, text

from lre.server.adapters.mail import SmtpTransport
from lre.server.adapters.signer import SignerClient
from lre.server.domain.evidence import EvidenceTimeMismatch
from lre.server.domain.letters import EvidenceEvent, LetterState, OutboxKind, OutboxState
from lre.server.domain.window import PARIS, AcceptanceWindow, paris_midnight
from lre.server.proofs import proof_pdf
from lre.server.proofs.document import read
from lre.server.services.custody import DecisionService, EvidenceRecorder
from lre.server.services.journal import SecurityJournal, SignerWatch
from lre.server.services.notification import NotificationPolicy, NotificationService
from lre.server.services.proofs import StoredProofs
from lre.server.storage import db, models
from lre.server.storage.outbox import new_message
from lre.server.storage.store import Store
from lre.server.workers.outbox import NoticeSealer, OutboxDispatcher, RetryPolicy
from lre.server.workers.outbox.compose import compose
from lre.server.workers.outbox.notices import NOTICE_GRACE
from lre.server.workers.signer_watch import SignerOutage, SignerWatcher
from tests.support.mail import Inbox, text_of
from tests.support.metrics import metric
from tests.support.processes import free_port
from tests.support.services import KEY
from tests.support.world import EVIDENCE_POLICY, SENDER_EMAIL, SKEW, World

RECIPIENT = "courrier@destinataire.example"


def travel(world: World, to: dt.datetime) -> None:
    """The world's clock set to ``to``, the sender's session opened then."""
    world.clock.now = to
    world.session = dataclasses.replace(
        world.session, authenticated_at=to, expires_at=to + dt.timedelta(days=1)
    )


def rows(world: World, kind: OutboxKind | None = None) -> list[models.OutboxMessage]:
    with db.sessions(world.engine)() as session:
        query = select(models.OutboxMessage).order_by(models.OutboxMessage.create_time)
        if kind is not None:
            query = query.where(models.OutboxMessage.kind == kind.value)
        found = list(session.scalars(query))
        session.expunge_all()
        return found


def evidence_time(world: World, letter_id: uuid.UUID, event: EvidenceEvent) -> dt.datetime:
    with db.sessions(world.engine)() as session:
        (found,) = session.scalars(
            select(models.Evidence).where(
                models.Evidence.letter_id == letter_id, models.Evidence.event == event
            )
        )
        return found.event_time


def dispatcher(
    world: World,
    smtp_port: int,
    decisions: DecisionService | None = None,
    notifications: NotificationService | None = None,
    lease: dt.timedelta = dt.timedelta(minutes=5),
    outage: SignerOutage | None = None,
) -> OutboxDispatcher:
    return OutboxDispatcher(
        world.stores,
        SmtpTransport("127.0.0.1", smtp_port, starttls=False, timeout_s=5),
        notifications or world.notifications,
        decisions or world.decisions,
        RetryPolicy(max_attempts=5, first_delay=dt.timedelta(seconds=30)),
        world.clock,
        outage or SignerOutage(),
        lease,
    )


def signer_down(world: World) -> tuple[DecisionService, NotificationService]:
    """The world's decisions and notifications with a signer that does not answer."""
    dead = SignerClient(f"127.0.0.1:{free_port()}", timeout_s=2)
    evidence = EvidenceRecorder(
        dead, world.policy.provider_name, EVIDENCE_POLICY, world.clock, clock_skew=SKEW
    )
    decisions = DecisionService(
        world.stores, dead, evidence, world.policy.reminder_days, world.clock
    )
    notifications = NotificationService(
        world.stores,
        NotificationPolicy(KEY, "LRE <notifications@lre.test>", "https://portal.lre.test"),
        StoredProofs(world.stores, functools.partial(proof_pdf, signer=dead), world.clock),
    )
    return decisions, notifications


def test_no_transaction_while_the_mail_server_talks_and_the_instant_is_after_it(
    world: World, smtp_port: int
) -> None:
    letter = world.deposit()
    world.clock.advance(seconds=2)
    composed_at = world.clock.now
    seen: list[str] = []

    def during_the_hand_off(message: Message) -> None:
        if message["To"] != RECIPIENT:
            return
        # The claim is committed: another connection reads it ...
        (row,) = [r for r in rows(world, OutboxKind.LETTER_WAITING) if r.letter_id == letter.id]
        seen.append(row.state.value)
        # ... and may write (on SQLite: the write lock is free): a deposit goes through.
        world.deposit()
        # The mail server takes its time: the notification is when it answered.
        world.clock.advance(seconds=7)

    with Inbox(smtp_port, on_data=during_the_hand_off) as inbox:
        assert world.dispatcher.dispatch(8) == 2  # the notice and the proof of deposit
    assert seen == ["sending"]
    assert len([m for m in inbox.messages if m["To"] == RECIPIENT]) == 1
    handed_at = composed_at + dt.timedelta(seconds=7)
    (row,) = [r for r in rows(world, OutboxKind.LETTER_WAITING) if r.letter_id == letter.id]
    assert (row.state, row.attempts, row.resends, row.claimed_until) == (
        OutboxState.SENT,
        1,
        0,
        None,
    )
    assert row.sent_time == handed_at
    notified = world.letter(letter.id)
    assert notified.notification_time == handed_at
    assert notified.acceptance_deadline == AcceptanceWindow(handed_at).closes_at
    assert evidence_time(world, letter.id, EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE) == handed_at


def test_signer_down_each_notice_goes_once_and_is_sealed_later_dated_at_the_hand_off(
    world: World, smtp_port: int
) -> None:
    letters = [world.deposit() for _ in range(3)]
    world.clock.advance(seconds=2)
    decisions, notifications = signer_down(world)
    outage = SignerOutage()
    during_outage = dispatcher(world, smtp_port, decisions, notifications, outage=outage)
    late_before = metric("lre_notices_sealed_late_total")
    with Inbox(smtp_port) as inbox:
        for _ in range(15):  # the loop goes round every second during the outage
            while during_outage.dispatch_one():
                pass
            NoticeSealer(world.stores, decisions, world.clock, outage).step()
            world.clock.advance(seconds=1)
    # Every notice left once, none sent again each round; the proofs (a PDF
    # signed by the signer) wait without counting an attempt.
    notices = [m for m in inbox.messages if m["To"] == RECIPIENT]
    assert len(notices) == 3 and len(inbox.messages) == 3
    sent = rows(world, OutboxKind.LETTER_WAITING)
    assert {(r.state, r.attempts, r.resends) for r in sent} == {(OutboxState.SENT, 1, 0)}
    proofs = rows(world, OutboxKind.PROOF)
    assert {(r.state, r.attempts) for r in proofs} == {(OutboxState.PENDING, 0)}
    assert all(world.letter(letter.id).state is LetterState.DEPOSITED for letter in letters)

    # The signer is back: the notices are sealed, dated when they were handed off.
    world.clock.advance(minutes=20)
    sealer = NoticeSealer(world.stores, world.decisions, world.clock, SignerOutage())
    sealer.step()
    assert not sealer.step()  # nothing left
    assert metric("lre_notices_sealed_late_total") == late_before + 3
    # Nothing more is due for them: the sealer's index no longer holds them.
    assert [r.next_attempt_time for r in rows(world, OutboxKind.LETTER_WAITING)] == [None] * 3
    for row in sent:
        assert row.letter_id is not None and row.sent_time is not None
        notified = world.letter(row.letter_id)
        assert notified.state is LetterState.NOTIFIED
        assert notified.notification_time == row.sent_time
        assert notified.acceptance_deadline == AcceptanceWindow(row.sent_time).closes_at
        assert (
            evidence_time(world, row.letter_id, EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE)
            == row.sent_time
        )
    # The reminders count from the hand-off too; no notice is sent again.
    with Inbox(smtp_port) as inbox:
        world.clock.advance(seconds=31)
        world.drain()
    assert [m["To"] for m in inbox.messages] == [SENDER_EMAIL] * 3  # the proofs of deposit
    reminders = rows(world, OutboxKind.REMINDER)
    assert sorted(t for r in reminders if (t := r.next_attempt_time) is not None) == sorted(
        r.sent_time + dt.timedelta(days=d)
        for r in sent
        if r.sent_time is not None
        for d in world.policy.reminder_days
    )


def test_proofs_and_late_notices_go_at_the_first_health_check_that_finds_the_signer_back(
    world: World, smtp_port: int
) -> None:
    """Found down, the signer is left alone: proofs are not even claimed and
    notices leave unsealed; the next health check that finds it serving (the
    real signer) ends the pause at once, not SIGNER_PAUSE later."""
    letter = world.deposit()
    world.clock.advance(seconds=2)
    outage = SignerOutage()
    dead = SignerClient(f"127.0.0.1:{free_port()}", timeout_s=2)
    journal = SecurityJournal(world.stores, world.clock)
    SignerWatcher(SignerWatch(journal, dead, "host-1"), outage, world.clock).step()
    assert outage.down(world.clock.now)
    lanes = dispatcher(world, smtp_port, outage=outage)
    sealer = NoticeSealer(world.stores, world.decisions, world.clock, outage)
    with Inbox(smtp_port) as inbox:
        assert lanes.dispatch(8) == 1  # the notice, not the proof
        world.clock.advance(seconds=1)
        assert lanes.dispatch(8) == 0
        world.clock.advance(seconds=NOTICE_GRACE.total_seconds())
        sealer.step()
        assert [m["To"] for m in inbox.messages] == [RECIPIENT]
        (proof,) = rows(world, OutboxKind.PROOF)
        assert (proof.state, proof.attempts) == (OutboxState.PENDING, 0)
        assert world.letter(letter.id).state is LetterState.DEPOSITED

        # Well within the pause, a health check finds the real signer serving.
        SignerWatcher(SignerWatch(journal, world.signer, "host-1"), outage, world.clock).step()
        assert not outage.down(world.clock.now)
        assert lanes.dispatch(8) == 1
        sealer.step()
        assert [m["To"] for m in inbox.messages] == [RECIPIENT, SENDER_EMAIL]
    notice = rows(world, OutboxKind.LETTER_WAITING)[0]
    assert world.letter(letter.id).state is LetterState.NOTIFIED
    assert world.letter(letter.id).notification_time == notice.sent_time


class _DecisionsBut:
    """The world's decisions, but for what a subclass replaces."""

    def __init__(self, decisions: DecisionService) -> None:
        self._decisions = decisions

    def __getattr__(self, name: str) -> object:
        return getattr(self._decisions, name)


class _ClockDisagrees(_DecisionsBut):
    """A notice's seal refused: the TSA's time and the evidence's disagree
    (EvidenceTimeMismatch)."""

    def record_notification(self, store: Store, letter_id: uuid.UUID, at: dt.datetime) -> object:
        raise EvidenceTimeMismatch("the timestamp and the event disagree")


def test_a_clock_that_disagrees_holds_back_the_notices_seal_not_the_proofs(
    world: World, smtp_port: int
) -> None:
    """The signer serves: its health says so, and proofs need no evidence time."""
    letter = world.deposit()
    world.clock.advance(seconds=2)
    outage = SignerOutage()
    disagrees = cast(DecisionService, _ClockDisagrees(world.decisions))
    with Inbox(smtp_port) as inbox:
        assert dispatcher(world, smtp_port, decisions=disagrees, outage=outage).dispatch(8) == 2
    assert not outage.down(world.clock.now)
    assert sorted(m["To"] for m in inbox.messages) == sorted([RECIPIENT, SENDER_EMAIL])
    assert world.letter(letter.id).state is LetterState.DEPOSITED


class _SealRefusedByTheDatabase(_DecisionsBut):
    """Recording a notification writes its evidence and then has a statement
    refused by the database (the connection stays)."""

    def record_notification(self, store: Store, letter_id: uuid.UUID, at: dt.datetime) -> object:
        self._decisions.record_notification(store, letter_id, at)
        store.letters._db.execute(text("SELECT * FROM no_such_table"))
        raise AssertionError("the statement above fails")


def test_a_seal_the_database_refuses_leaves_the_hand_off_recorded_and_sealed_later(
    world: World, smtp_port: int
) -> None:
    """Only the sealing is undone (its evidence too): the notice is SENT once,
    never claimed again, and the notice sealer seals it dated at its hand-off."""
    letter = world.deposit()
    world.clock.advance(seconds=2)
    refusing = cast(DecisionService, _SealRefusedByTheDatabase(world.decisions))
    with Inbox(smtp_port) as inbox:
        assert dispatcher(world, smtp_port, decisions=refusing).dispatch(8) == 2
    handed_at = world.clock.now
    (row,) = [r for r in rows(world, OutboxKind.LETTER_WAITING) if r.letter_id == letter.id]
    assert (row.state, row.attempts, row.resends, row.sent_time) == (
        OutboxState.SENT,
        1,
        0,
        handed_at,
    )
    # Due to the sealer after the grace (a sealed notice has nothing due).
    assert row.next_attempt_time == handed_at + NOTICE_GRACE
    assert world.letter(letter.id).state is LetterState.DEPOSITED
    with world.stores.read() as store:
        events = {e.event for e in store.evidence.of_letter(letter.id)}
    assert EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE not in events
    # Past the lease, nothing is claimed again; past the grace, the sealer seals it.
    world.clock.advance(minutes=6)
    with Inbox(smtp_port) as inbox:
        assert dispatcher(world, smtp_port).dispatch(8) == 0
    assert [m["To"] for m in inbox.messages] == []
    NoticeSealer(world.stores, world.decisions, world.clock, SignerOutage()).step()
    notified = world.letter(letter.id)
    assert notified.state is LetterState.NOTIFIED
    assert notified.notification_time == handed_at
    assert evidence_time(world, letter.id, EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE) == handed_at


def test_a_notice_is_sealed_late_within_the_bound_only(
    world: World, smtp_port: int, signer_process: object
) -> None:
    # Strict times here: the world's clock stays by the real TSA's, no skew.
    strict = EvidenceRecorder(
        world.signer, world.policy.provider_name, EVIDENCE_POLICY, world.clock
    )
    decisions = DecisionService(
        world.stores, world.signer, strict, world.policy.reminder_days, world.clock
    )
    real_now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    # Deposited 25 hours ago (the deposit's own seal is checked with the world's skew).
    world.clock.now = real_now - dt.timedelta(hours=25, minutes=1)
    late, too_late = world.deposit(), world.deposit()
    world.clock.now = real_now
    # Handed off two minutes ago (beyond the 30 s any other event may wait), and 25 hours ago.
    notices = {r.letter_id: r.id for r in rows(world, OutboxKind.LETTER_WAITING)}
    with world.stores.begin() as store:
        for letter, ago in ((late, dt.timedelta(minutes=2)), (too_late, dt.timedelta(hours=25))):
            store.outbox.update(
                notices[letter.id],
                state=OutboxState.SENT,
                attempts=1,
                sent_time=real_now - ago,
                next_attempt_time=real_now,
            )
    sealer = NoticeSealer(world.stores, decisions, world.clock, SignerOutage())
    sealer.step()
    assert world.letter(late.id).state is LetterState.NOTIFIED
    assert world.letter(late.id).notification_time == world.clock.now - dt.timedelta(minutes=2)
    assert world.letter(too_late.id).state is LetterState.DEPOSITED  # refused, kept for an operator
    (row,) = [r for r in rows(world, OutboxKind.LETTER_WAITING) if r.letter_id == too_late.id]
    # Backed off, not retried in a loop.
    assert row.next_attempt_time is not None and row.next_attempt_time > world.clock.now


def test_notices_are_claimed_before_proofs(world: World, smtp_port: int) -> None:
    for _ in range(3):
        world.deposit()
        world.clock.advance(seconds=1)
    world.clock.advance(seconds=2)
    # Each deposit queued a notice (it starts the recipient's window) and a proof.
    first = dispatcher(world, smtp_port).claim(2)
    assert [m.kind for m in first] == [OutboxKind.LETTER_WAITING] * 2
    rest = dispatcher(world, smtp_port).claim(8)
    assert [m.kind for m in rest] == [OutboxKind.LETTER_WAITING] + [OutboxKind.PROOF] * 3


def test_each_message_gives_way_to_the_api_before_it_is_sent(world: World, smtp_port: int) -> None:
    """The dispatcher asks before each proof or reminder, not once a batch (a
    batch of proofs never takes the CPU from callers for longer than one
    message), and never before a notice or a code."""
    world.deposit()
    world.clock.advance(seconds=2)
    with Inbox(smtp_port) as inbox:
        asked: list[int] = []
        lane = world.make_dispatcher(smtp_port, lambda: asked.append(len(inbox.messages)))
        assert lane.dispatch() == 2  # the notice and the proof of deposit
        # Not before the notice (claimed first); before the proof, once.
        assert asked == [1]
        assert len(inbox.messages) == 2


def test_a_message_left_sending_by_a_dead_dispatcher_is_resent_once_with_its_id(
    world: World, smtp_port: int
) -> None:
    letter = world.deposit()
    world.clock.advance(seconds=2)
    resent_before = {k: metric("lre_notifications_resent_total", kind=k) for k in OutboxKind}
    dead = dispatcher(world, smtp_port, lease=dt.timedelta(seconds=60))
    claimed = dead.claim(8)  # ... and the process is killed before any hand-off returns
    assert len(claimed) == 2
    survivor = dispatcher(world, smtp_port, lease=dt.timedelta(seconds=60))
    with Inbox(smtp_port) as inbox:
        assert survivor.dispatch(8) == 0  # the lease holds
        world.clock.advance(seconds=61)
        assert survivor.dispatch(8) == 2
        world.clock.advance(seconds=61)
        assert survivor.dispatch(8) == 0  # once per crash
    assert sorted(m["Message-ID"] for m in inbox.messages) == sorted(
        world.notifications.message_id(m.id) for m in claimed
    )
    # Its Date (RFC 5322) is when the message was written, not when this
    # attempt left, two minutes later: the same on every attempt.
    dates = {world.notifications.message_id(m.id): m.create_time for m in claimed}
    for sent in inbox.messages:
        assert parsedate_to_datetime(sent["Date"]) == dates[sent["Message-ID"]].replace(
            microsecond=0
        )
        assert sent["Auto-Submitted"] == "auto-generated"  # RFC 3834: no auto-reply to it
    for row in rows(world):
        if row.kind in (OutboxKind.LETTER_WAITING, OutboxKind.PROOF):
            assert (row.state, row.attempts, row.resends) == (OutboxState.SENT, 2, 1)
    for kind in (OutboxKind.LETTER_WAITING, OutboxKind.PROOF):
        assert metric("lre_notifications_resent_total", kind=kind) == resent_before[kind] + 1
    assert (
        metric("lre_notifications_resent_total", kind=OutboxKind.REMINDER)
        == (resent_before[OutboxKind.REMINDER])
    )
    assert world.letter(letter.id).state is LetterState.NOTIFIED
    # The dead dispatcher's claim, settled late, changes nothing.
    with world.stores.begin() as store:
        assert not store.outbox.settle(claimed[0], state=OutboxState.FAILED)


def test_one_failing_message_never_holds_the_others(world: World, smtp_port: int) -> None:
    letters = [world.deposit() for _ in range(4)]
    world.clock.advance(seconds=2)
    # The sender's mailbox answers 451: its proofs of deposit wait, each on its own.
    with Inbox(smtp_port, defer=frozenset({SENDER_EMAIL})) as inbox:
        world.drain()
        first = world.clock.now
        world.clock.advance(seconds=31)
        world.drain()
    assert sorted(m["To"] for m in inbox.messages) == [RECIPIENT] * 4
    assert all(world.letter(letter.id).state is LetterState.NOTIFIED for letter in letters)
    proofs = rows(world, OutboxKind.PROOF)
    assert {(r.state, r.attempts) for r in proofs} == {(OutboxState.PENDING, 2)}
    # Attempt 2 failed at first + 31 s: the next one a minute later (30 s doubled).
    assert {r.next_attempt_time for r in proofs} == {first + dt.timedelta(seconds=91)}


@pytest.mark.parametrize("before_midnight_s", [90, 299])
def test_no_notice_is_composed_just_before_paris_midnight(
    world: World, smtp_port: int, before_midnight_s: int
) -> None:
    # 14 to 15 March 2027, winter time (UTC+1); the next test crosses the change of time.
    midnight = paris_midnight(dt.date(2027, 3, 15))
    travel(world, midnight - dt.timedelta(seconds=before_midnight_s + 5))
    letter = world.deposit()
    world.clock.advance(seconds=5)
    with Inbox(smtp_port) as inbox:
        world.drain()  # the proof of deposit goes; the notice waits for midnight
        assert [m["To"] for m in inbox.messages] == [SENDER_EMAIL]
        (row,) = rows(world, OutboxKind.LETTER_WAITING)
        assert (row.state, row.attempts, row.next_attempt_time) == (
            OutboxState.PENDING,
            0,
            midnight,
        )
        world.clock.now = midnight - dt.timedelta(seconds=1)
        world.drain()
        assert len(inbox.messages) == 1
        world.clock.now = midnight + dt.timedelta(seconds=1)
        world.drain()
    (notice,) = [m for m in inbox.messages if m["To"] == RECIPIENT]
    notified = world.letter(letter.id)
    assert notified.notification_time == midnight + dt.timedelta(seconds=1)
    # Notified on the 15th: the 15 days count from the 16th, the last is 30 March.
    window = AcceptanceWindow(midnight + dt.timedelta(seconds=1))
    assert window.notification_day == dt.date(2027, 3, 15) and window.last_day == dt.date(
        2027, 3, 30
    )
    assert notified.acceptance_deadline == window.closes_at
    assert "30 March 2027" in text_of(notice) and "30 mars 2027" in text_of(notice)


def test_a_notice_just_outside_the_quiet_period_is_sent_the_same_day(
    world: World, smtp_port: int
) -> None:
    midnight = paris_midnight(dt.date(2027, 10, 31))  # the night winter time begins
    travel(world, midnight - dt.timedelta(minutes=6))
    letter = world.deposit()
    world.clock.advance(seconds=2)
    with Inbox(smtp_port) as inbox:
        world.drain()
    (notice,) = [m for m in inbox.messages if m["To"] == RECIPIENT]
    notified = world.letter(letter.id)
    assert notified.notification_time is not None
    assert notified.notification_time.astimezone(PARIS).date() == dt.date(2027, 10, 30)
    assert "14 November 2027" in text_of(notice)
    assert AcceptanceWindow(notified.notification_time).last_day == dt.date(2027, 11, 14)


def test_a_message_whose_claim_is_half_spent_goes_back_unsent(world: World, smtp_port: int) -> None:
    world.deposit()
    world.clock.advance(seconds=2)
    slow = dispatcher(world, smtp_port, lease=dt.timedelta(seconds=60))
    first, second = slow.claim(8)
    with Inbox(smtp_port) as inbox:
        slow.deliver(first)
        world.clock.advance(seconds=31)  # the relay was slow: half the lease is gone
        slow.deliver(second)
    assert [m["Message-ID"] for m in inbox.messages] == [world.notifications.message_id(first.id)]
    (back,) = [r for r in rows(world) if r.id == second.id]
    assert (back.state, back.attempts, back.resends) == (OutboxState.PENDING, 0, 0)
    with Inbox(smtp_port) as inbox:
        world.drain()
    assert [m["Message-ID"] for m in inbox.messages] == [world.notifications.message_id(second.id)]


def test_a_proof_email_composed_twice_is_the_same_bytes_and_its_parts_read_back(
    world: World,
) -> None:
    """The MIME boundaries come from the outbox id (not searched for in the
    encoded text): a resend is byte for byte the first attempt, and a MIME
    parser finds every part whole."""
    world.deposit()
    world.clock.advance(seconds=2)
    proof = next(m for m in dispatcher(world, free_port()).claim(8) if m.kind is OutboxKind.PROOF)

    def flattened() -> bytes:
        with world.stores.read() as store:
            make = compose(world.notifications, store, proof, world.clock())
        email = make()
        assert email is not None
        return email.as_bytes()

    first = flattened()
    assert flattened() == first
    parsed = message_from_bytes(first)
    assert parsed.get_boundary() == f"=_{proof.id.hex}_mixed"
    parts = {
        str(part.get_filename()): part.get_payload(decode=True)
        for part in parsed.walk()
        if part.get_filename()
    }
    assert [name.rsplit(".", 1)[1] for name in parts] == ["pdf", "json", "p7m"]
    pdf, document, seal = parts.values()
    assert isinstance(pdf, bytes) and pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert isinstance(document, bytes) and isinstance(seal, bytes)
    # The seal is over the attached evidence (read raises otherwise).
    assert read(document, seal).event is EvidenceEvent.SUBMISSION_ACCEPTANCE


def _outbox_rows_read(world: World, ask: Callable[[Store], object]) -> int:
    """How many outbox rows (or index entries) the database read to answer
    the statements ``ask`` sends: EXPLAIN ANALYZE of each on PostgreSQL; on
    SQLite, which reports no counts, 0 if each searches the outbox by an
    index on kind, state and time, else the table's size (a scan)."""
    sent: list[tuple[str, object]] = []

    def capture(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, params))

    event.listen(world.engine, "before_cursor_execute", capture)
    try:
        with world.stores.begin() as store:
            ask(store)
    finally:
        event.remove(world.engine, "before_cursor_execute", capture)
    assert sent
    read, table = 0, len(rows(world))
    with world.engine.connect() as connection:
        for statement, params in sent:
            if world.engine.dialect.name == "postgresql":
                (plan,) = connection.exec_driver_sql(
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + statement,
                    params,  # type: ignore[arg-type]
                ).scalar_one()
                read += _rows_of(plan["Plan"], "outbox_messages")
            else:
                lines = [
                    str(row[-1])
                    for row in connection.exec_driver_sql(
                        "EXPLAIN QUERY PLAN " + statement,
                        params,  # type: ignore[arg-type]
                    )
                ]
                outbox = [line for line in lines if "outbox_messages" in line]
                if not all("ix_outbox_messages_kind_state_next_attempt" in x for x in outbox):
                    read += table
    return read


def _rows_of(node: dict[str, object], relation: str) -> int:
    """Rows the scans of ``relation`` under a PostgreSQL plan node returned,
    over all their loops (a bitmap index scan counts its index entries)."""
    own = 0
    name = str(node.get("Index Name", ""))
    if node.get("Relation Name") == relation or name.startswith(f"ix_{relation}"):
        own = int(cast(int, node["Actual Rows"])) * int(cast(int, node["Actual Loops"]))
    children = cast(list[dict[str, object]], node.get("Plans", []))
    return own + sum(_rows_of(child, relation) for child in children)


def test_the_sealer_reads_the_notices_left_unsealed_not_every_notice_sent(
    world: World, smtp_port: int
) -> None:
    # A history of notices sent and sealed (and of proofs sent), one letter's
    # notice left unsealed while the signer was down.
    sealed = world.deposit()
    with Inbox(smtp_port):
        world.drain()
    # Sealed at its hand-off: nothing more is due.
    assert [r.next_attempt_time for r in rows(world, OutboxKind.LETTER_WAITING)] == [None]
    history = [
        new_message(sealed.id, kind, {}, world.clock(), world.clock())
        | {"state": OutboxState.SENT, "attempts": 1, "sent_time": world.clock()}
        | ({"next_attempt_time": None} if kind is OutboxKind.LETTER_WAITING else {})
        for kind in (OutboxKind.LETTER_WAITING, OutboxKind.PROOF)
        for _ in range(300)
    ]
    with world.stores.begin() as store:
        store.outbox.add(history)
    left = world.deposit()
    decisions, notifications = signer_down(world)
    during_outage = dispatcher(world, smtp_port, decisions, notifications, outage=SignerOutage())
    with Inbox(smtp_port):
        while during_outage.dispatch_one():  # the notice; the proof waits for the signer
            pass
    world.clock.advance(seconds=10)

    now = world.clock()
    with world.stores.begin() as store:
        (due,) = store.outbox.unrecorded_notices(now, 16)
        assert due.letter_id == left.id
        assert store.outbox.oldest_unrecorded_notice() == due.sent_time
    assert _outbox_rows_read(world, lambda store: store.outbox.unrecorded_notices(now, 16)) <= 2
    assert _outbox_rows_read(world, lambda store: store.outbox.oldest_unrecorded_notice()) <= 2

    NoticeSealer(world.stores, world.decisions, world.clock, SignerOutage()).step()
    assert world.letter(left.id).state is LetterState.NOTIFIED
    with world.stores.begin() as store:
        assert store.outbox.unrecorded_notices(now, 16) == []
        assert store.outbox.oldest_unrecorded_notice() is None


def test_migrating_clears_the_time_of_the_sealed_notices_only(world: World, smtp_port: int) -> None:
    """Migration 0021 over notices recorded before it: those whose evidence
    is sealed have nothing due; one left unsealed (the signer was down) keeps
    the time the sealer looks at it."""
    sealed = world.deposit()
    with Inbox(smtp_port):
        world.drain()
    left = world.deposit()
    decisions, notifications = signer_down(world)
    during_outage = dispatcher(world, smtp_port, decisions, notifications, outage=SignerOutage())
    with Inbox(smtp_port):
        while during_outage.dispatch_one():
            pass
    config = db.alembic_config(world.engine)
    command.downgrade(config, "0020")
    times = {r.letter_id: r.next_attempt_time for r in rows(world, OutboxKind.LETTER_WAITING)}
    assert None not in times.values()  # as before 0021: every notice has a time
    db.migrate(world.engine)
    after = {r.letter_id: r.next_attempt_time for r in rows(world, OutboxKind.LETTER_WAITING)}
    assert after == {sealed.id: None, left.id: times[left.id]}
    world.clock.advance(minutes=1)
    with world.stores.begin() as store:
        (due,) = store.outbox.unrecorded_notices(world.clock(), 16)
    assert due.letter_id == left.id
