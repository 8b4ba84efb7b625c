"""verify-log, pass 2: letter by letter.

The letter's entries are replayed through the domain's state machine
(``domain.letters.Letter``), so an impossible or late transition is named;
every entry row must say what its leaf says, and every evidence row must be
the one its leaf names (``lre.server.audit.evidence``). The ``letters`` row
must end where the replay ends: state, deposit, notification, decision,
deadline, legal hold. Evidence rows that no entry names were written behind
the log."""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Row, select
from sqlalchemy.orm import aliased

from lre.server.audit.evidence import EvidenceCheck
from lre.server.audit.reading import Report, json_object, stream
from lre.server.audit.seals import SealChecker
from lre.server.domain import log
from lre.server.domain.errors import DomainError
from lre.server.domain.evidence import _utc
from lre.server.domain.letters import EvidenceEvent, Letter, LetterState
from lre.server.storage import models

E = models.LogEntry.__table__
V = models.Evidence.__table__
L = models.Letter.__table__
P = models.LetterPart.__table__
C = models.PartyCorrection.__table__

SENDER, RECIPIENT = aliased(models.Party), aliased(models.Party)


def check(
    connection: Connection,
    report: Report,
    seals: SealChecker | None,
    _: list[log.PublishedHead],
) -> None:
    letters = stream(
        connection,
        select(
            L,
            SENDER.kind.label("s_kind"),
            SENDER.given_name.label("s_given"),
            SENDER.family_name.label("s_family"),
            SENDER.company_name.label("s_company"),
            SENDER.email.label("s_email"),
            SENDER.registration_id.label("s_registration"),
            SENDER.erase_time.label("s_erased"),
            RECIPIENT.kind.label("r_kind"),
            RECIPIENT.given_name.label("r_given"),
            RECIPIENT.family_name.label("r_family"),
            RECIPIENT.company_name.label("r_company"),
            RECIPIENT.email.label("r_email"),
            RECIPIENT.registration_id.label("r_registration"),
            RECIPIENT.erase_time.label("r_erased"),
        )
        .outerjoin(SENDER, SENDER.id == L.c.sender_id)
        .outerjoin(RECIPIENT, RECIPIENT.id == L.c.recipient_id)
        .order_by(L.c.id),
    )
    entries = stream(
        connection,
        select(
            E.c.seq,
            E.c.letter_id,
            E.c.evidence_id,
            E.c.state,
            E.c.event,
            E.c.event_time,
            E.c.leaf,
            V.c.id.label("v_id"),
            V.c.letter_id.label("v_letter_id"),
            V.c.event.label("v_event"),
            V.c.event_time.label("v_event_time"),
            V.c.document.label("v_document"),
            V.c.seal.label("v_seal"),
        )
        .outerjoin(V, V.c.id == E.c.evidence_id)
        .where(E.c.letter_id.is_not(None))
        # Unsequenced entries (committed, not yet numbered) last, in commit order.
        .order_by(E.c.letter_id, E.c.seq.is_(None), E.c.seq, E.c.create_time),
    )
    parts = stream(connection, select(P).order_by(P.c.letter_id, P.c.part_index))
    # The names parties had before a correction (few: read at once): earlier
    # evidence names them.
    history: dict[Any, list[dict[str, Any]]] = {}
    for party_id, before in connection.execute(select(C.c.party_id, C.c.before)):
        if isinstance(before, dict):
            history.setdefault(party_id, []).append(before)
    for letter_id, (rows, logged, letter_parts) in _merged(
        (letters, lambda r: r.id), (entries, lambda r: r.letter_id), (parts, lambda r: r.letter_id)
    ):
        _Replay(report, seals, letter_id, rows[0] if rows else None, letter_parts, history).run(
            logged
        )
    # Evidence rows no entry points to: written behind the log.
    orphans = stream(
        connection,
        select(V.c.id)
        .outerjoin(E, E.c.evidence_id == V.c.id)
        .where(E.c.id.is_(None))
        .order_by(V.c.id),
    )
    for (evidence_id,) in orphans:
        report.add(f"evidence {evidence_id} is not in the log (inserted outside the service)")


def _merged(*streams: tuple[Iterator[Row[Any]], Any]) -> Iterator[tuple[Any, list[list[Any]]]]:
    """Streams sorted by letter id, grouped and aligned: (id, [rows of each stream])."""

    def groups(
        index: int, rows: Iterator[Row[Any]], key: Any
    ) -> Iterator[tuple[Any, int, list[Any]]]:
        for value, group in itertools.groupby(rows, key):
            yield value, index, list(group)

    merged = heapq.merge(
        *(groups(i, rows, key) for i, (rows, key) in enumerate(streams)),
        key=lambda item: (_sort_key(item[0]), item[1]),
    )
    for key, items in itertools.groupby(merged, key=lambda item: item[0]):
        found: list[list[Any]] = [[] for _ in streams]
        for _, index, rows in items:
            found[index] = rows
        yield key, found


def _sort_key(value: Any) -> str:
    # The databases order UUIDs bytewise, which is the order of their hex form.
    return value.hex if isinstance(value, uuid.UUID) else str(value)


APPLY = {
    EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE: Letter.notify,
    EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE_FAILURE: Letter.fail_notification,
    EvidenceEvent.CONSIGNMENT_ACCEPTANCE: Letter.accept,
    EvidenceEvent.CONSIGNMENT_REJECTION: Letter.refuse,
    EvidenceEvent.ACCEPTANCE_REJECTION_EXPIRY: Letter.expire,
    EvidenceEvent.CONTENT_HANDOVER: Letter.hand_over_content,
}
OPENING = {
    EvidenceEvent.SUBMISSION_ACCEPTANCE: LetterState.DEPOSITED,
    EvidenceEvent.SUBMISSION_REJECTION: LetterState.REJECTED,
}


class _Replay:
    """One letter: its entries through the state machine, then its row."""

    def __init__(
        self,
        report: Report,
        seals: SealChecker | None,
        letter_id: Any,
        row: Row[Any] | None,
        parts: list[Row[Any]],
        history: dict[Any, list[dict[str, Any]]] | None = None,
    ) -> None:
        self.report = report
        self.id = letter_id
        self.row = row
        self.evidence = EvidenceCheck(report, seals, letter_id, row, parts, history)
        self.letter: Letter | None = None
        self.hold = False
        self.last_time: dt.datetime | None = None
        self.events: set[EvidenceEvent] = set()

    def add(self, where: str, what: str) -> None:
        self.report.add(f"{where}: {what}")

    def run(self, entries: list[Row[Any]]) -> None:
        if self.row is not None:
            self.report.letters += 1
            self.report.tick("letters")
        for entry in entries:
            if entry.seq is None:
                self.report.unsequenced += 1
            self._entry(entry)
        if self.row is None:
            self.add(f"letter {self.id}", "is missing but the log has entries for it (deleted)")
        elif not entries:
            self.add(f"letter {self.id}", "has no entry in the log (inserted outside the service)")
        else:
            self._compare_row()

    def _entry(self, entry: Row[Any]) -> None:
        where = f"entry {entry.seq}" if entry.seq is not None else f"unsequenced entry of {self.id}"
        leaf = json_object(entry.leaf)
        if leaf is None:
            self.add(where, "its leaf is not a JSON object (malformed or changed)")
            return
        try:
            record = _record(leaf)
        except (KeyError, ValueError, TypeError):
            self.add(where, "its leaf is not a log record (malformed or changed)")
            return
        if record.leaf() != entry.leaf:
            self.add(where, "its leaf is not in canonical form (changed)")
        if (
            record.letter_id != str(self.id)
            or record.state is not entry.state
            or record.event is not entry.event
            or record.event_time != entry.event_time
            or (record.evidence_id or None) != _evidence_name(self.id, entry.evidence_id)
        ):
            self.add(where, "the row no longer says what its leaf says (changed)")
        if self.last_time is not None and record.event_time < self.last_time:
            self.add(where, "dated before the letter's previous entry (back-dated or out of order)")
        self.last_time = record.event_time
        if record.legal_hold is not None:
            if self.letter is None or record.state is not self.letter.state:
                self.add(where, "a legal hold that does not follow the letter's state")
            self.hold = record.legal_hold
            return
        self._transition(where, record)
        if entry.evidence_id is not None or record.evidence_id is not None:
            deposit_time = self.letter.deposit_time if self.letter is not None else None
            self.evidence.check(where, record, entry, deposit_time)

    def _transition(self, where: str, record: log.LogRecord) -> None:
        event = record.event
        if event is None:
            self.add(where, "an entry with neither an event nor a legal hold")
            return
        if event in self.events:
            self.add(where, f"a second {event.value} for the letter")
        self.events.add(event)
        if event in OPENING:
            if self.letter is not None:
                self.add(where, f"{event.value} after the letter's deposit")
                return
            self.letter = Letter(state=OPENING[event], deposit_time=record.event_time)
            outcome_state, outcome_time = self.letter.state, record.event_time
        elif self.letter is None:
            self.add(where, f"{event.value} before the letter's deposit (its first entry)")
            return
        else:
            try:
                outcome = APPLY[event](self.letter, record.event_time)
            except DomainError as exc:
                self.add(where, f"{event.value} is not possible here: {exc}")
                return
            outcome_state, outcome_time = outcome.state, outcome.event_time
        if outcome_state is not record.state or outcome_time != record.event_time:
            self.add(
                where,
                f"{event.value} leads to {outcome_state.value} at {_utc(outcome_time)}, "
                f"the leaf says {record.state.value} at {_utc(record.event_time)}",
            )

    def _compare_row(self) -> None:
        row, letter = self.row, self.letter
        assert row is not None
        where = f"letter {self.id}"
        if letter is None:
            self.add(where, "its log has no deposit")
            return
        window = letter.window
        deadline = (
            window.closes_at
            if window is not None and letter.state is not LetterState.NOTIFICATION_FAILED
            else None
        )
        replayed = {
            "state": letter.state,
            "deposit_time": letter.deposit_time,
            "notification_time": letter.notification_time,
            "decision_time": letter.decision_time,
            "acceptance_deadline": deadline,
            "legal_hold": self.hold,
        }
        if letter.state is LetterState.REJECTED and row.wrapped_key is not None:
            self.add(where, "a rejected letter holds a content key")
        wrong = [
            f"{column} is {_show(row._mapping[column])}, the log says {_show(value)}"
            for column, value in replayed.items()
            if row._mapping[column] != value
        ]
        if wrong:
            self.add(where, "the row does not match its log: " + "; ".join(wrong))


def _show(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return _utc(value)
    if isinstance(value, LetterState):
        return value.value
    return str(value)


def _evidence_name(letter_id: Any, evidence_id: Any) -> str | None:
    return None if evidence_id is None else f"letters/{letter_id}/evidence/{evidence_id}"


def _record(leaf: dict[str, Any]) -> log.LogRecord:
    """The record a leaf states; raises KeyError/ValueError/TypeError if it is not one."""
    if leaf.get("format") != log.FORMAT:
        raise ValueError("format")
    letter = leaf["letter"]
    if not isinstance(letter, str) or not letter.startswith("letters/"):
        raise ValueError("letter")
    when = dt.datetime.fromisoformat(leaf["eventTime"])
    if when.tzinfo is None:
        raise ValueError("eventTime")
    hold = leaf.get("legalHold")
    if hold is not None and not isinstance(hold, bool):
        raise TypeError("legalHold")
    strings = [leaf.get(k) for k in ("evidence", "documentSha256", "sealSha256")]
    if any(s is not None and not isinstance(s, str) for s in strings):
        raise TypeError("evidence")
    event = leaf.get("event")
    return log.LogRecord(
        letter_id=letter.removeprefix("letters/"),
        state=LetterState(leaf["state"]),
        event_time=when.astimezone(dt.UTC),
        event=EvidenceEvent(event) if event is not None else None,
        evidence_id=strings[0],
        document_sha256=strings[1],
        seal_sha256=strings[2],
        legal_hold=hold,
    )
