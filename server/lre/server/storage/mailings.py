"""Mailings, their recipients and their content, stored once for all their letters."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import delete, exists, func, insert, select, update

from lre.server.domain.letters import LetterState
from lre.server.domain.mailings import MailingRecipientRecord, MailingRecord
from lre.server.domain.records import LetterRecord
from lre.server.storage import models
from lre.server.storage.letters import ContentRepository
from lre.server.storage.objects import ObjectRepository
from lre.server.storage.records import Db, from_row, paged_records, table, to_row

MAILINGS = table(models.Mailing)
RECIPIENTS = table(models.MailingRecipient)
CHUNKS = table(models.MailingChunk)
LETTERS = table(models.Letter)
EVIDENCE = table(models.Evidence)


class MailingContentRepository(ContentRepository):
    """A mailing's encrypted chunks, with the rows and reads of a letter's
    content (the content functions encrypt and decrypt either alike; the
    chunks are bound to the mailing's id)."""

    def add(self, chunks: list[dict[str, Any]]) -> None:
        rows = [
            {
                "mailing_id": c["letter_id"],
                "part_index": c["part_index"],
                "sequence": c["sequence"],
                "ciphertext": c["ciphertext"],
            }
            for c in chunks
        ]
        if rows:
            self._db.execute(insert(CHUNKS), rows)

    def delete(self, letter_id: uuid.UUID) -> None:
        self._db.execute(delete(CHUNKS).where(CHUNKS.c.mailing_id == letter_id))

    def read(self, letter_id: uuid.UUID) -> Iterator[tuple[int, int, bytes]]:
        rows = self._db.execute(
            select(CHUNKS.c.part_index, CHUNKS.c.sequence, CHUNKS.c.ciphertext)
            .where(CHUNKS.c.mailing_id == letter_id)
            .order_by(CHUNKS.c.part_index, CHUNKS.c.sequence)
            .execution_options(yield_per=8)
        )
        for row in rows:
            yield row.part_index, row.sequence, row.ciphertext


class MailingRepository:
    def __init__(self, db: Db) -> None:
        self._db = db
        self.content = MailingContentRepository(db)

    def add(self, mailing: MailingRecord) -> None:
        """The mailing first: its chunks refer to it."""
        self._db.execute(insert(MAILINGS), [to_row(mailing)])

    def add_recipients(self, recipients: Iterable[MailingRecipientRecord]) -> None:
        rows = [to_row(r) for r in recipients]
        if rows:
            self._db.execute(insert(RECIPIENTS), rows)

    def get(self, mailing_id: uuid.UUID) -> MailingRecord | None:
        row = self._db.execute(select(MAILINGS).where(MAILINGS.c.id == mailing_id)).one_or_none()
        return None if row is None else from_row(MailingRecord, row)

    def by_request(self, sender_id: uuid.UUID, request_id: str) -> MailingRecord | None:
        row = self._db.execute(
            select(MAILINGS).where(
                MAILINGS.c.sender_id == sender_id, MAILINGS.c.request_id == request_id
            )
        ).one_or_none()
        return None if row is None else from_row(MailingRecord, row)

    def recipients(self, mailing_id: uuid.UUID) -> list[MailingRecipientRecord]:
        rows = self._db.execute(
            select(RECIPIENTS)
            .where(RECIPIENTS.c.mailing_id == mailing_id)
            .order_by(RECIPIENTS.c.position)
        )
        return [from_row(MailingRecipientRecord, row) for row in rows]

    def recipient(self, mailing_id: uuid.UUID, position: int) -> MailingRecipientRecord | None:
        row = self._db.execute(
            select(RECIPIENTS).where(
                RECIPIENTS.c.mailing_id == mailing_id, RECIPIENTS.c.position == position
            )
        ).one_or_none()
        return None if row is None else from_row(MailingRecipientRecord, row)

    def letter_states(self, mailing_id: uuid.UUID) -> dict[LetterState, int]:
        counts = dict.fromkeys(LetterState, 0)
        for state, count in self._db.execute(
            select(LETTERS.c.state, func.count())
            .where(LETTERS.c.mailing_id == mailing_id)
            .group_by(LETTERS.c.state)
        ):
            counts[state] = count
        return counts

    def letters(self, mailing_id: uuid.UUID) -> dict[uuid.UUID, LetterRecord]:
        rows = self._db.execute(select(LETTERS).where(LETTERS.c.mailing_id == mailing_id))
        return {row.id: from_row(LetterRecord, row) for row in rows}

    def page_for(
        self, sender_id: uuid.UUID, page_size: int, page_token: str
    ) -> tuple[list[MailingRecord], str]:
        query = (
            select(MAILINGS)
            .where(MAILINGS.c.sender_id == sender_id)
            .order_by(MAILINGS.c.deposit_time.desc(), MAILINGS.c.id)
        )
        return paged_records(
            self._db, query, page_size, page_token, lambda row: from_row(MailingRecord, row)
        )

    def letters_page(
        self, mailing_id: uuid.UUID, state: LetterState | None, page_size: int, page_token: str
    ) -> tuple[list[LetterRecord], str]:
        query = select(LETTERS).where(LETTERS.c.mailing_id == mailing_id)
        if state is not None:
            query = query.where(LETTERS.c.state == state)
        query = query.order_by(LETTERS.c.deposit_time.desc(), LETTERS.c.id)
        return paged_records(
            self._db, query, page_size, page_token, lambda row: from_row(LetterRecord, row)
        )

    def purge_unneeded_content(self, now: dt.datetime) -> int:
        """Deletes the content of mailings none of whose letters still holds
        the key (each letter's own retention and legal hold decide that);
        how many mailings."""
        still_needed = exists().where(
            LETTERS.c.mailing_id == MAILINGS.c.id, LETTERS.c.wrapped_key.is_not(None)
        )
        due = list(
            self._db.scalars(
                select(MAILINGS.c.id).where(MAILINGS.c.content_purge_time.is_(None), ~still_needed)
            )
        )
        if due:
            ObjectRepository(self._db).loosen(MAILINGS, due, now)
            self._db.execute(delete(CHUNKS).where(CHUNKS.c.mailing_id.in_(due)))
            self._db.execute(
                update(MAILINGS)
                .where(MAILINGS.c.id.in_(due))
                .values(wrapped_key=None, content_purge_time=now)
            )
        return len(due)

    def evidence_steps(
        self, mailing_id: uuid.UUID
    ) -> dict[uuid.UUID, list[tuple[Any, dt.datetime, uuid.UUID]]]:
        """(event, time, evidence id) of every letter of the mailing, in order; one query."""
        steps: dict[uuid.UUID, list[tuple[Any, dt.datetime, uuid.UUID]]] = {}
        for row in self._db.execute(
            select(EVIDENCE.c.letter_id, EVIDENCE.c.event, EVIDENCE.c.event_time, EVIDENCE.c.id)
            .join(LETTERS, LETTERS.c.id == EVIDENCE.c.letter_id)
            .where(LETTERS.c.mailing_id == mailing_id)
            .order_by(EVIDENCE.c.event_time, EVIDENCE.c.id)
        ):
            steps.setdefault(row.letter_id, []).append((row.event, row.event_time, row.id))
        return steps
