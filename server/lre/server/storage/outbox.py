"""The outbox: messages written in the transaction of the change that causes
them, claimed and sent by the dispatcher.

A message is PENDING until a dispatcher claims it (SENDING, with a lease in
``claimed_until``), then SENT or FAILED, or PENDING again for a later attempt.
Every change of a claimed message names the attempt it settles, so a
dispatcher that outlived its lease changes nothing another one has claimed
since. A SENT recipient's notice keeps ``next_attempt_time`` as the time its
NotificationForAcceptance is due to be sealed (again, if the signer was down),
and has none once that evidence (or its failure's) is recorded: the sealer's
index then holds the notices whose evidence may be missing, not every notice
ever sent (those recorded by an older version keep their time, and are
filtered out by their letter's state)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Row,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from lre.server.domain.letters import LetterState, OutboxKind, OutboxState
from lre.server.domain.records import MessageRecord
from lre.server.storage import models
from lre.server.storage.records import Db, from_row, paged_records, table

OUTBOX = table(models.OutboxMessage)
LETTERS = table(models.Letter)
# Claimed first: what a person waits for, or what starts a legal period.
URGENT = (OutboxKind.LETTER_WAITING, OutboxKind.EMAIL_CODE)
# A message's row changed only if it is still as its claimer saw it; the
# columns set are the parameters' other keys. Built once: every message is
# settled twice or more.
_SETTLE = update(OUTBOX).where(
    OUTBOX.c.id == bindparam("b_id"),
    OUTBOX.c.state == bindparam("b_state"),
    OUTBOX.c.attempts == bindparam("b_attempts"),
)
_COLUMNS = frozenset(OUTBOX.c.keys())
_INSERT = insert(OUTBOX)
_NOTHING_DUE = update(OUTBOX).where(OUTBOX.c.id == bindparam("b_id")).values(next_attempt_time=None)


def _oldest_due(kinds: ColumnElement[bool]) -> Select[Any]:
    """The ``n`` oldest messages of ``kinds`` due at ``now``: pending ones,
    and those whose claim's lease ran out; locked, skipping rows another
    dispatcher holds. Built once: each lane asks several times a second."""
    now: BindParameter[dt.datetime] = bindparam("now")
    due = or_(
        and_(OUTBOX.c.state == OutboxState.PENDING, OUTBOX.c.next_attempt_time <= now),
        and_(OUTBOX.c.state == OutboxState.SENDING, OUTBOX.c.claimed_until <= now),
    )
    return (
        select(OUTBOX)
        .where(due, kinds)
        .order_by(OUTBOX.c.next_attempt_time)
        .limit(bindparam("n"))
        .with_for_update(skip_locked=True)
    )


_DUE_URGENT = _oldest_due(OUTBOX.c.kind.in_(URGENT))
_DUE_OTHERS = _oldest_due(OUTBOX.c.kind.not_in(bindparam("skipped", expanding=True)))


def new_message(
    letter_id: uuid.UUID | None,
    kind: OutboxKind,
    payload: dict[str, str],
    due: dt.datetime,
    now: dt.datetime,
) -> dict[str, Any]:
    """A pending message, as a row to insert."""
    return {
        "id": uuid.uuid4(),
        "letter_id": letter_id,
        "kind": kind.value,
        "payload": payload,
        "state": OutboxState.PENDING,
        "attempts": 0,
        "next_attempt_time": due,
        "create_time": now,
        "sent_time": None,
        "last_error": None,
        "claimed_until": None,
        "resends": 0,
    }


def _message(row: Row[Any]) -> MessageRecord:
    mapping = dict(row._mapping)
    mapping["kind"] = OutboxKind(mapping["kind"])
    return from_row(MessageRecord, mapping)


class OutboxRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    def add(self, messages: Iterable[dict[str, Any]]) -> None:
        """Rows made by ``new_message``."""
        rows = list(messages)
        if rows:
            self._db.execute(_INSERT, rows)

    def lock(self, message_id: uuid.UUID) -> MessageRecord | None:
        row = self._db.execute(
            select(OUTBOX).where(OUTBOX.c.id == message_id).with_for_update()
        ).one_or_none()
        return None if row is None else _message(row)

    def claim(
        self,
        now: dt.datetime,
        batch: int,
        lease: dt.timedelta,
        waiting: Collection[OutboxKind] = (),
    ) -> list[tuple[MessageRecord, bool]]:
        """Claims up to ``batch`` messages due now: pending ones, and those left
        SENDING by a dispatcher whose lease ran out (it died mid-send: the
        message goes again, ``resends`` counts it); none of the (not urgent)
        kinds ``waiting``. Each becomes SENDING until ``now + lease``, its
        attempt counted. Rows another dispatcher holds are skipped (SKIP
        LOCKED; on SQLite the transaction holds the write lock). Returns each
        claimed message as it now is, and whether it is a resend."""
        # Recipients' notices (they start the legal window) and e-mailed codes
        # (someone is waiting at a login) before proofs and reminders: a proof
        # carries a PDF (milliseconds of CPU and a signer call), and a backlog
        # of them must not hold a notice.
        rows = list(self._db.execute(_DUE_URGENT, {"now": now, "n": batch}))
        if len(rows) < batch:
            skipped = [kind.value for kind in (*URGENT, *waiting)]
            rows += self._db.execute(
                _DUE_OTHERS, {"now": now, "n": batch - len(rows), "skipped": skipped}
            )
        claimed = []
        for message in [_message(row) for row in rows]:
            resend = message.state is OutboxState.SENDING
            values: dict[str, Any] = {
                "state": OutboxState.SENDING,
                "attempts": message.attempts + 1,
                "claimed_until": now + lease,
                "resends": message.resends + int(resend),
            }
            if self._settle(message.id, message.state, message.attempts, values):
                claimed.append((dataclasses.replace(message, **values), resend))
        return claimed

    def _settle(
        self, message_id: uuid.UUID, state: OutboxState, attempts: int, values: dict[str, Any]
    ) -> bool:
        if not values.keys() <= _COLUMNS:  # else silently not set
            raise ValueError(f"no such outbox columns: {sorted(values.keys() - _COLUMNS)}")
        result = self._db.execute(
            _SETTLE, {"b_id": message_id, "b_state": state, "b_attempts": attempts, **values}
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def settle(self, claimed: MessageRecord, **values: Any) -> bool:
        """Ends a claim (the message as ``claim`` returned it): SENT, FAILED or
        PENDING again. False when the claim was lost (its lease ran out and
        another dispatcher claimed the message since): nothing changed."""
        return self._settle(
            claimed.id, OutboxState.SENDING, claimed.attempts, {"claimed_until": None, **values}
        )

    def update(self, message_id: uuid.UUID, **values: Any) -> None:
        """Changes a message: its state, attempts, times, error, payload."""
        self._db.execute(update(OUTBOX).where(OUTBOX.c.id == message_id).values(**values))

    def unrecorded_notices(self, now: dt.datetime, batch: int) -> list[MessageRecord]:
        """Recipients' notices sent (or given up) whose letter still waits for
        the evidence of it, due now: the signer was down when they left. Locked;
        rows another worker holds are skipped."""
        rows = self._db.execute(
            select(OUTBOX)
            .join(LETTERS, LETTERS.c.id == OUTBOX.c.letter_id)
            .where(
                OUTBOX.c.kind == OutboxKind.LETTER_WAITING.value,
                OUTBOX.c.state.in_([OutboxState.SENT, OutboxState.FAILED]),
                OUTBOX.c.next_attempt_time <= now,
                LETTERS.c.state == LetterState.DEPOSITED,
            )
            .order_by(OUTBOX.c.next_attempt_time)
            .limit(batch)
            .with_for_update(of=OUTBOX, skip_locked=True)
        )
        return [_message(row) for row in rows]

    def sealed(self, message_id: uuid.UUID) -> None:
        """A notice's evidence is recorded: nothing more is due for it."""
        self._db.execute(_NOTHING_DUE, {"b_id": message_id})

    def remove(self, message_id: uuid.UUID) -> None:
        self._db.execute(delete(OUTBOX).where(OUTBOX.c.id == message_id))

    def oldest_unrecorded_notice(self) -> dt.datetime | None:
        """The hand-off of the oldest notice sent whose letter still waits for
        its NotificationForAcceptance (the signer was down); None if none."""
        oldest: dt.datetime | None = self._db.execute(
            select(func.min(OUTBOX.c.sent_time))
            .join(LETTERS, LETTERS.c.id == OUTBOX.c.letter_id)
            .where(
                OUTBOX.c.kind == OutboxKind.LETTER_WAITING.value,
                OUTBOX.c.state == OutboxState.SENT,
                OUTBOX.c.next_attempt_time.is_not(None),
                LETTERS.c.state == LetterState.DEPOSITED,
            )
        ).scalar_one()
        return oldest

    def backlog(self, now: dt.datetime) -> tuple[int, dt.datetime | None]:
        """How many messages are due and unsent (being sent included), and the
        creation of the oldest (a reminder waiting for its day is not late)."""
        count, oldest = self._db.execute(
            select(func.count(), func.min(OUTBOX.c.create_time)).where(
                OUTBOX.c.state.in_([OutboxState.PENDING, OutboxState.SENDING]),
                OUTBOX.c.create_time <= now,
            )
        ).one()
        return count, oldest

    def page_for_letter(
        self,
        letter_id: uuid.UUID,
        kinds: Iterable[OutboxKind] | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[MessageRecord], str]:
        """A letter's messages, oldest first; only those of ``kinds`` if given."""
        query = select(OUTBOX).where(OUTBOX.c.letter_id == letter_id)
        if kinds is not None:
            query = query.where(OUTBOX.c.kind.in_([k.value for k in kinds]))
        query = query.order_by(OUTBOX.c.create_time, OUTBOX.c.id)
        return paged_records(self._db, query, page_size, page_token, _message)
