"""The outbox: messages written in the transaction of the change that causes
them, claimed and sent by the dispatcher."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.orm import Session as DbSession

from lre.server.domain.letters import OutboxKind, OutboxState
from lre.server.domain.records import MessageRecord
from lre.server.storage import models
from lre.server.storage.records import from_row, paged_records, table

OUTBOX = table(models.OutboxMessage)


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
    }


def _message(row: Row[Any]) -> MessageRecord:
    mapping = dict(row._mapping)
    mapping["kind"] = OutboxKind(mapping["kind"])
    return from_row(MessageRecord, mapping)


class OutboxRepository:
    def __init__(self, db: DbSession) -> None:
        self._db = db

    def add(self, messages: Iterable[dict[str, Any]]) -> None:
        """Rows made by ``new_message``."""
        rows = list(messages)
        if rows:
            self._db.execute(insert(OUTBOX), rows)

    def lock(self, message_id: uuid.UUID) -> MessageRecord | None:
        row = self._db.execute(
            select(OUTBOX).where(OUTBOX.c.id == message_id).with_for_update()
        ).one_or_none()
        return None if row is None else _message(row)

    def claim_due(self, now: dt.datetime, batch: int) -> list[MessageRecord]:
        """Pending messages due now, locked; rows another dispatcher holds are skipped."""
        rows = self._db.execute(
            select(OUTBOX)
            .where(OUTBOX.c.state == OutboxState.PENDING, OUTBOX.c.next_attempt_time <= now)
            .order_by(OUTBOX.c.next_attempt_time)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        return [_message(row) for row in rows]

    def update(self, message_id: uuid.UUID, **values: Any) -> None:
        """Changes a claimed message: its state, attempts, times, error, payload."""
        self._db.execute(update(OUTBOX).where(OUTBOX.c.id == message_id).values(**values))

    def remove(self, message_id: uuid.UUID) -> None:
        self._db.execute(delete(OUTBOX).where(OUTBOX.c.id == message_id))

    def backlog(self, now: dt.datetime) -> tuple[int, dt.datetime | None]:
        """How many messages are due and unsent, and the creation of the oldest
        (a reminder waiting for its day is not late)."""
        count, oldest = self._db.execute(
            select(func.count(), func.min(OUTBOX.c.create_time)).where(
                OUTBOX.c.state == OutboxState.PENDING, OUTBOX.c.create_time <= now
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
