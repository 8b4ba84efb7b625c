"""The tamper-evident log: its entries (RFC 9162 leaves) and sealed tree heads."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator

from sqlalchemy import Update, bindparam, insert, select, text, update
from sqlalchemy import func as sql

from lre.server.domain import log
from lre.server.domain.log import JournalRecord, LogRecord
from lre.server.domain.records import LetterRecord, LogEntryRecord, TreeHeadRecord
from lre.server.storage import models
from lre.server.storage.records import Db, dialect_name, from_row, table, to_row

ENTRIES = table(models.LogEntry)
HEADS = table(models.TreeHead)
NODES = table(models.TreeNode)
LETTERS = table(models.Letter)
# pg_advisory_xact_lock key of the sequencer: one at a time across replicas.
SEQUENCER_LOCK = 0x4C52_4501


def _sequence_statement() -> Update:
    """The oldest ``batch`` unsequenced entries numbered after the last, in one
    statement (built once: the sequencer runs it several times a second)."""
    order = (ENTRIES.c.create_time, ENTRIES.c.id)
    last = select(sql.coalesce(sql.max(ENTRIES.c.seq), -1)).correlate(None).scalar_subquery()
    oldest = (
        select(ENTRIES.c.id, (last + sql.row_number().over(order_by=order)).label("n"))
        .where(ENTRIES.c.seq.is_(None))
        .order_by(*order)
        .limit(bindparam("batch"))
        .subquery()
    )
    return update(ENTRIES).where(ENTRIES.c.id == oldest.c.id).values(seq=oldest.c.n)


_SEQUENCE = _sequence_statement()
_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


class LogRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    def append(
        self, records: Iterable[tuple[LogRecord, uuid.UUID | None]], now: dt.datetime
    ) -> None:
        """Unsequenced entries, each with the id of the evidence it logs (if any)."""
        rows = [
            {
                "id": uuid.uuid4(),
                "seq": None,
                "letter_id": uuid.UUID(record.letter_id),
                "evidence_id": evidence_id,
                "state": record.state,
                "event": record.event,
                "event_time": record.event_time,
                "leaf": record.leaf(),
                "create_time": now,
            }
            for record, evidence_id in records
        ]
        if rows:
            self._db.execute(insert(ENTRIES), rows)

    def append_journal(self, record: JournalRecord, now: dt.datetime) -> None:
        """An unsequenced journal entry: no letter, state or evidence."""
        self._db.execute(
            insert(ENTRIES),
            [
                {
                    "id": uuid.uuid4(),
                    "seq": None,
                    "letter_id": None,
                    "evidence_id": None,
                    "state": None,
                    "event": None,
                    "event_time": record.event_time,
                    "leaf": record.leaf(),
                    "create_time": now,
                }
            ],
        )

    def size(self) -> int:
        """Entries sequenced so far."""
        last = self._db.scalar(select(sql.max(ENTRIES.c.seq)))
        return 0 if last is None else last + 1

    def sequence(self, batch: int) -> int:
        """Numbers the oldest unsequenced entries, contiguously after the last;
        how many it numbered. One sequencer at a time: an advisory lock on
        PostgreSQL; on SQLite every transaction holds the write lock from its start."""
        if dialect_name(self._db) == "postgresql":
            self._db.execute(_ADVISORY_LOCK, {"key": SEQUENCER_LOCK})
        numbered: int = self._db.execute(_SEQUENCE, {"batch": batch}).rowcount  # type: ignore[attr-defined]
        return numbered

    def leaves(self, size: int) -> Iterator[bytes]:
        """The leaves of the first ``size`` entries, by index."""
        return iter(
            self._db.scalars(
                select(ENTRIES.c.leaf)
                .where(ENTRIES.c.seq < size)
                .order_by(ENTRIES.c.seq)
                .execution_options(yield_per=10_000)
            )
        )

    def entry_of_evidence(self, evidence_id: uuid.UUID) -> LogEntryRecord | None:
        row = self._db.execute(
            select(ENTRIES).where(ENTRIES.c.evidence_id == evidence_id)
        ).one_or_none()
        return None if row is None else from_row(LogEntryRecord, row)

    def after(
        self, sender_id: uuid.UUID, cursor: int, limit: int
    ) -> list[tuple[LogEntryRecord, LetterRecord]]:
        """Sequenced entries after ``cursor`` about letters the party sent."""
        rows = self._db.execute(
            select(ENTRIES, LETTERS)
            .join(LETTERS, LETTERS.c.id == ENTRIES.c.letter_id)
            .where(ENTRIES.c.seq > cursor, LETTERS.c.sender_id == sender_id)
            .order_by(ENTRIES.c.seq)
            .limit(limit)
        )
        # Both tables have id, state and create_time: each side is read by its columns.
        found = []
        for row in rows:
            values = tuple(row)
            entry = dict(zip([c.name for c in ENTRIES.columns], values, strict=False))
            letter = dict(
                zip([c.name for c in LETTERS.columns], values[len(ENTRIES.columns) :], strict=True)
            )
            found.append((from_row(LogEntryRecord, entry), from_row(LetterRecord, letter)))
        return found

    # -- the Merkle tree's stored subtree hashes ---------------------------------

    def node(self) -> log.Node:
        """Stored subtree hashes; computed from the leaves where none is stored
        yet (heads sealed before the nodes were kept: until the next head)."""

        def node(level: int, position: int) -> bytes:
            found = self._db.scalar(
                select(NODES.c.hash).where(NODES.c.level == level, NODES.c.position == position)
            )
            if found is not None:
                return bytes(found)
            leaves = self._db.scalars(
                select(ENTRIES.c.leaf)
                .where(ENTRIES.c.seq >= position << level)
                .where(ENTRIES.c.seq < (position + 1) << level)
                .order_by(ENTRIES.c.seq)
                .execution_options(yield_per=10_000)
            )
            return log.root([log.leaf_hash(leaf) for leaf in leaves])

        return node

    def extend(self, size: int) -> tuple[bytes, list[dict[str, object]]]:
        """The root at ``size``, and the subtree nodes to store to get there:
        reads the O(log n) stored peaks and the leaves no node covers yet."""
        covered = self._db.scalar(select(sql.max(NODES.c.position)).where(NODES.c.level == 0))
        start = 0 if covered is None or covered >= size else covered + 1
        node = self.node()
        tree = log.MerkleRange(start, [node(*peak) for peak in log.peaks(start)])
        new: list[dict[str, object]] = []
        leaves = self._db.scalars(
            select(ENTRIES.c.leaf)
            .where(ENTRIES.c.seq >= start, ENTRIES.c.seq < size)
            .order_by(ENTRIES.c.seq)
            .execution_options(yield_per=10_000)
        )
        for leaf in leaves:
            new.extend(
                {"level": level, "position": position, "hash": hash_}
                for level, position, hash_ in tree.append(log.leaf_hash(leaf))
            )
        return tree.root(), new

    def add_nodes(self, nodes: list[dict[str, object]]) -> None:
        if nodes:
            self._db.execute(insert(NODES), nodes)

    # -- tree heads ----------------------------------------------------------

    def last_head(self) -> TreeHeadRecord | None:
        """The head sealed last (the highest number)."""
        row = self._db.execute(select(HEADS).order_by(HEADS.c.number.desc()).limit(1)).one_or_none()
        return None if row is None else from_row(TreeHeadRecord, row)

    def add_head(self, head: TreeHeadRecord) -> None:
        self._db.execute(insert(HEADS), [to_row(head)])

    def head(self, size: int | None = None) -> TreeHeadRecord | None:
        """The head of that size, or the latest."""
        query = select(HEADS)
        if size:
            query = query.where(HEADS.c.tree_size == size)
        row = self._db.execute(query.order_by(HEADS.c.tree_size.desc()).limit(1)).one_or_none()
        return None if row is None else from_row(TreeHeadRecord, row)

    def head_containing(self, seq: int, size: int | None) -> TreeHeadRecord | None:
        """The latest head (or the one of ``size``) whose tree contains entry ``seq``."""
        query = select(HEADS).where(HEADS.c.tree_size > seq)
        if size:
            query = query.where(HEADS.c.tree_size == size)
        row = self._db.execute(query.order_by(HEADS.c.tree_size.desc()).limit(1)).one_or_none()
        return None if row is None else from_row(TreeHeadRecord, row)
