"""The log of letter events: sequencing, and reading it from a cursor.

Entries are written unsequenced by the transactions that change letters. The
sequencer numbers committed entries one batch at a time under a lock, so the
numbers are contiguous and a reader that has seen number n has seen every
entry below it: following the log from a cursor never skips nor repeats."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Callable

from prometheus_client import Counter
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from server.storage import models

SEQUENCED = Counter("lre_log_entries_sequenced", "Log entries given their index.")
# pg_advisory_xact_lock key of the sequencer: one at a time across replicas.
SEQUENCER_LOCK = 0x4C52_4501


class EventLog:
    def __init__(self, sessions: sessionmaker[DbSession], clock: Callable[[], dt.datetime]) -> None:
        self._sessions = sessions
        self._clock = clock

    def sequence(self, batch: int = 1000) -> int:
        """Numbers the oldest unsequenced entries; how many it numbered."""
        with self._sessions.begin() as db:
            if db.get_bind().dialect.name == "postgresql":
                db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEQUENCER_LOCK})
            # SQLite: every transaction holds the write lock from its start.
            last = db.scalar(select(func.max(models.LogEntry.seq)))
            entries = list(
                db.scalars(
                    select(models.LogEntry)
                    .where(models.LogEntry.seq.is_(None))
                    .order_by(models.LogEntry.create_time, models.LogEntry.id)
                    .limit(batch)
                )
            )
            start = -1 if last is None else last
            for offset, entry in enumerate(entries, start=1):
                entry.seq = start + offset
        SEQUENCED.inc(len(entries))
        return len(entries)

    def size(self, db: DbSession | None = None) -> int:
        """Entries sequenced so far; in the caller's transaction when given one."""
        with contextlib.nullcontext(db) if db else self._sessions() as session:
            last = session.scalar(select(func.max(models.LogEntry.seq)))
        return 0 if last is None else last + 1

    def after(
        self, party_id: uuid.UUID, cursor: int, limit: int = 100, db: DbSession | None = None
    ) -> list[tuple[models.LogEntry, models.Letter]]:
        """Sequenced entries after ``cursor`` about letters the party sent."""
        with contextlib.nullcontext(db) if db else self._sessions() as session:
            rows = session.execute(
                select(models.LogEntry, models.Letter)
                .join(models.Letter, models.Letter.id == models.LogEntry.letter_id)
                .where(models.LogEntry.seq > cursor, models.Letter.sender_id == party_id)
                .order_by(models.LogEntry.seq)
                .limit(limit)
            )
            return list(rows)
