"""The log of letter events: sequencing, reading it from a cursor, and its
RFC 9162 Merkle tree (sealed tree heads, inclusion and consistency proofs).

Entries are written unsequenced by the transactions that change letters. The
sequencer numbers committed entries one batch at a time under a lock, so the
numbers are contiguous and a reader that has seen number n has seen every
entry below it: following the log from a cursor never skips nor repeats."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable
from pathlib import Path

from prometheus_client import Counter

from lre.server.adapters.signer import SignerClient
from lre.server.adapters.witness import WitnessPublisher
from lre.server.domain import log
from lre.server.domain.errors import FailedPrecondition, InvalidArgument, NotFound, WriteConflict
from lre.server.domain.records import LetterRecord, LogEntryRecord, TreeHeadRecord
from lre.server.storage.store import Stores

SEQUENCED = Counter("lre_log_entries_sequenced", "Log entries given their index.")
HEADS = Counter("lre_tree_heads_sealed", "Tree heads of the log sealed by the signer.")
# In the `tree_head_export` directory: one PublishedHead per line, oldest first.
HEADS_FILE = "tree-heads.jsonl"


class EventLog:
    def __init__(
        self,
        stores: Stores,
        clock: Callable[[], dt.datetime],
        signer: SignerClient | None = None,
        issuer: str = "",
        export: Path | None = None,
        witnesses: WitnessPublisher | None = None,
    ) -> None:
        self._stores = stores
        self._clock = clock
        self._signer = signer
        self._issuer = issuer
        self._export = export
        self._witnesses = witnesses

    # -- Merkle tree (RFC 9162) --------------------------------------------------

    def seal_head(self, retry: bool = True) -> TreeHeadRecord | None:
        """Seals the tree as sequenced now (a no-op if that size is sealed): the
        head is numbered after the last one and names it, so a deleted head
        shows; its subtree hashes are stored with it, so the next head and every
        proof read O(log n) nodes."""
        assert self._signer is not None
        with self._stores.read() as store:
            size = store.log.size()
            if size == 0:
                return None
            existing = store.log.head(size)
            if existing is not None:
                return existing
            root_hash, nodes = store.log.extend(size)
            last = store.log.last_head()
        number = last.number + 1 if last else 1
        previous = (last.tree_size, last.root_hash) if last else None
        now = self._clock()
        document = log.tree_head_document(size, root_hash, now, self._issuer, number, previous)
        head = TreeHeadRecord(size, number, root_hash, now, document, self._signer.seal(document))
        try:
            with self._stores.begin() as store:
                store.log.add_nodes(nodes)
                store.log.add_head(head)
        except WriteConflict:  # another replica sealed a head (or its nodes) meanwhile
            with self._stores.read() as store:
                found = store.log.head(size)
            if found is not None:
                return found
            if retry:
                return self.seal_head(retry=False)
            raise
        HEADS.inc()
        if self._export is not None or self._witnesses is not None:
            self._publish(head)
        return head

    def _publish(self, head: TreeHeadRecord) -> None:
        """Publishes the head outside the database, after its commit: to the
        other witnesses in the background; to the file, one write of one line
        (O_APPEND keeps replicas' lines whole), then fsync."""
        line = log.PublishedHead(
            head.number, head.tree_size, head.root_hash, head.document, head.seal
        ).line()
        if self._witnesses is not None:
            self._witnesses.publish(line)
        if self._export is None:
            return
        self._export.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._export / HEADS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def head(self, size: int | None = None) -> TreeHeadRecord:
        """The sealed head of that size, or the latest."""
        with self._stores.read() as store:
            head = store.log.head(size)
        if head is None:
            raise NotFound("no sealed tree head of that size")
        return head

    def inclusion(
        self, evidence_id: uuid.UUID, size: int | None = None
    ) -> tuple[LogEntryRecord, TreeHeadRecord, list[bytes]]:
        """The evidence's entry, a sealed head that contains it, and the audit path."""
        with self._stores.read() as store:
            entry = store.log.entry_of_evidence(evidence_id)
            if entry is None or entry.seq is None:
                raise FailedPrecondition("the evidence is not in the log yet; retry shortly")
            head = store.log.head_containing(entry.seq, size)
            if head is None and size:
                raise FailedPrecondition("no sealed tree head of that size contains the evidence")
            if head is None:
                raise FailedPrecondition(
                    "no sealed tree head contains the evidence yet; retry after the next one"
                    " (heads are sealed periodically)"
                )
            proof = log.inclusion_path(entry.seq, head.tree_size, store.log.node())
        return entry, head, proof

    def consistency(
        self, first: int, second: int
    ) -> tuple[TreeHeadRecord, TreeHeadRecord, list[bytes]]:
        if not 0 < first <= second:
            raise InvalidArgument("first_tree_size", "between 1 and second_tree_size")
        old, new = self.head(first), self.head(second)
        with self._stores.read() as store:
            proof = log.consistency_path(first, second, store.log.node())
        return old, new, proof

    def sequence(self, batch: int = 1000) -> int:
        """Numbers the oldest unsequenced entries; how many it numbered."""
        with self._stores.begin() as store:
            count = store.log.sequence(batch)
        SEQUENCED.inc(count)
        return count

    def size(self) -> int:
        """Entries sequenced so far."""
        with self._stores.read() as store:
            return store.log.size()

    def after(
        self, party_id: uuid.UUID, cursor: int, limit: int = 100
    ) -> list[tuple[LogEntryRecord, LetterRecord]]:
        """Sequenced entries after ``cursor`` about letters the party sent."""
        with self._stores.read() as store:
            return store.log.after(party_id, cursor, limit)
