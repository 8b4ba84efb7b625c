"""The log of letter events: sequencing, reading it from a cursor, and its
RFC 9162 Merkle tree (sealed tree heads, inclusion and consistency proofs).

Entries are written unsequenced by the transactions that change letters. The
sequencer numbers committed entries one batch at a time under a lock, so the
numbers are contiguous and a reader that has seen number n has seen every
entry below it: following the log from a cursor never skips nor repeats."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import uuid
from collections.abc import Callable
from pathlib import Path

from prometheus_client import Counter
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.domain import log
from lre.server.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from lre.server.signing import SignerClient
from lre.server.storage import models

SEQUENCED = Counter("lre_log_entries_sequenced", "Log entries given their index.")
HEADS = Counter("lre_tree_heads_sealed", "Tree heads of the log sealed by the signer.")
# pg_advisory_xact_lock key of the sequencer: one at a time across replicas.
SEQUENCER_LOCK = 0x4C52_4501
# In the `tree_head_export` directory: one PublishedHead per line, oldest first.
HEADS_FILE = "tree-heads.jsonl"


class EventLog:
    def __init__(
        self,
        sessions: sessionmaker[DbSession],
        clock: Callable[[], dt.datetime],
        signer: SignerClient | None = None,
        issuer: str = "",
        export: Path | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._signer = signer
        self._issuer = issuer
        self._export = export

    # -- Merkle tree (RFC 9162) --------------------------------------------------

    @staticmethod
    def nodes(db: DbSession) -> log.Node:
        """Stored subtree hashes; computed from the leaves where none is stored
        yet (heads sealed before the nodes were kept: until the next head)."""

        def node(level: int, position: int) -> bytes:
            found = db.get(models.TreeNode, (level, position))
            if found is not None:
                return found.hash
            leaves = db.scalars(
                select(models.LogEntry.leaf)
                .where(models.LogEntry.seq >= position << level)
                .where(models.LogEntry.seq < (position + 1) << level)
                .order_by(models.LogEntry.seq)
                .execution_options(yield_per=10_000)
            )
            return log.root([log.leaf_hash(leaf) for leaf in leaves])

        return node

    @staticmethod
    def _extend(db: DbSession, size: int) -> tuple[bytes, list[dict[str, object]]]:
        """The root at ``size``, and the subtree nodes to store to get there:
        reads the O(log n) stored peaks and the leaves no node covers yet."""
        covered = db.scalar(
            select(func.max(models.TreeNode.position)).where(models.TreeNode.level == 0)
        )
        start = 0 if covered is None or covered >= size else covered + 1
        node = EventLog.nodes(db)
        tree = log.MerkleRange(start, [node(*peak) for peak in log.peaks(start)])
        new: list[dict[str, object]] = []
        leaves = db.scalars(
            select(models.LogEntry.leaf)
            .where(models.LogEntry.seq >= start, models.LogEntry.seq < size)
            .order_by(models.LogEntry.seq)
            .execution_options(yield_per=10_000)
        )
        for leaf in leaves:
            new.extend(
                {"level": level, "position": position, "hash": hash_}
                for level, position, hash_ in tree.append(log.leaf_hash(leaf))
            )
        return tree.root(), new

    def seal_head(self, retry: bool = True) -> models.TreeHead | None:
        """Seals the tree as sequenced now (a no-op if that size is sealed)."""
        assert self._signer is not None
        with self._sessions() as db:
            size = self.size(db)
            if size == 0:
                return None
            existing = db.get(models.TreeHead, size)
            if existing is not None:
                return existing
            root_hash, nodes = self._extend(db, size)
            last = db.scalar(
                select(models.TreeHead).order_by(models.TreeHead.number.desc()).limit(1)
            )
        number = last.number + 1 if last else 1
        previous = (last.tree_size, last.root_hash) if last else None
        now = self._clock()
        document = log.tree_head_document(size, root_hash, now, self._issuer, number, previous)
        head = models.TreeHead(
            tree_size=size,
            number=number,
            root_hash=root_hash,
            timestamp=now,
            document=document,
            seal=self._signer.seal(document),
        )
        try:
            with self._sessions.begin() as db:
                if nodes:
                    db.execute(insert(models.TreeNode), nodes)
                db.add(head)
        except IntegrityError:  # another replica sealed a head (or its nodes) meanwhile
            with self._sessions() as db:
                found = db.get(models.TreeHead, size)
            if found is not None:
                return found
            if retry:
                return self.seal_head(retry=False)
            raise
        HEADS.inc()
        if self._export is not None:
            self._publish(head)
        return head

    def _publish(self, head: models.TreeHead) -> None:
        """Appends the head outside the database, after its commit: one write
        of one line (O_APPEND keeps replicas' lines whole), then fsync."""
        line = log.PublishedHead(
            head.number, head.tree_size, head.root_hash, head.document, head.seal
        ).line()
        assert self._export is not None
        self._export.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._export / HEADS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def head(self, size: int | None = None) -> models.TreeHead:
        """The sealed head of that size, or the latest."""
        with self._sessions() as db:
            if size:
                head = db.get(models.TreeHead, size)
            else:
                head = db.scalar(
                    select(models.TreeHead).order_by(models.TreeHead.tree_size.desc()).limit(1)
                )
        if head is None:
            raise NotFound("no sealed tree head of that size")
        return head

    def inclusion(
        self, evidence_id: uuid.UUID, size: int | None = None
    ) -> tuple[models.LogEntry, models.TreeHead, list[bytes]]:
        """The evidence's entry, a sealed head that contains it, and the audit path."""
        with self._sessions() as db:
            entry = db.scalar(
                select(models.LogEntry).where(models.LogEntry.evidence_id == evidence_id)
            )
            if entry is None or entry.seq is None:
                raise FailedPrecondition("the evidence is not in the log yet; retry shortly")
            query = select(models.TreeHead).where(models.TreeHead.tree_size > entry.seq)
            if size:
                query = query.where(models.TreeHead.tree_size == size)
            head = db.scalar(query.order_by(models.TreeHead.tree_size.desc()).limit(1))
            if head is None:
                raise FailedPrecondition("no sealed tree head contains the evidence yet")
            proof = log.inclusion_path(entry.seq, head.tree_size, self.nodes(db))
        return entry, head, proof

    def consistency(
        self, first: int, second: int
    ) -> tuple[models.TreeHead, models.TreeHead, list[bytes]]:
        if not 0 < first <= second:
            raise InvalidArgument("first_tree_size", "between 1 and second_tree_size")
        old, new = self.head(first), self.head(second)
        with self._sessions() as db:
            proof = log.consistency_path(first, second, self.nodes(db))
        return old, new, proof

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
