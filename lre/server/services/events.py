"""The log of letter events: sequencing, reading it from a cursor, and its
RFC 9162 Merkle tree (sealed tree heads, inclusion and consistency proofs).

Entries are written unsequenced by the transactions that change letters. The
sequencer numbers committed entries one batch at a time under a lock, so the
numbers are contiguous and a reader that has seen number n has seen every
entry below it: following the log from a cursor never skips nor repeats."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

from prometheus_client import Counter
from sqlalchemy.exc import IntegrityError

from lre.server.adapters.signer import SignerClient
from lre.server.domain import log
from lre.server.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from lre.server.domain.records import LetterRecord, LogEntryRecord, TreeHeadRecord
from lre.server.storage.log import LogRepository
from lre.server.storage.store import Stores

SEQUENCED = Counter("lre_log_entries_sequenced", "Log entries given their index.")
HEADS = Counter("lre_tree_heads_sealed", "Tree heads of the log sealed by the signer.")


def _hashes(entries: LogRepository, size: int) -> list[bytes]:
    """Leaf hashes of the first ``size`` entries, by index."""
    return [log.leaf_hash(leaf) for leaf in entries.leaves(size)]


class EventLog:
    def __init__(
        self,
        stores: Stores,
        clock: Callable[[], dt.datetime],
        signer: SignerClient | None = None,
        issuer: str = "",
    ) -> None:
        self._stores = stores
        self._clock = clock
        self._signer = signer
        self._issuer = issuer

    # -- Merkle tree (RFC 9162) --------------------------------------------------

    def seal_head(self) -> TreeHeadRecord | None:
        """Seals the tree as sequenced now (a no-op if that size is sealed)."""
        assert self._signer is not None
        with self._stores.read() as store:
            size = store.log.size()
            if size == 0:
                return None
            existing = store.log.head(size)
            if existing is not None:
                return existing
            root_hash = log.root(_hashes(store.log, size))
        now = self._clock()
        document = log.tree_head_document(size, root_hash, now, self._issuer)
        head = TreeHeadRecord(size, root_hash, now, document, self._signer.seal(document))
        try:
            with self._stores.begin() as store:
                store.log.add_head(head)
        except IntegrityError:  # another replica sealed the same size
            with self._stores.read() as store:
                found = store.log.head(size)
                assert found is not None
                return found
        HEADS.inc()
        return head

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
            if head is None:
                raise FailedPrecondition("no sealed tree head contains the evidence yet")
            proof = log.inclusion_proof(entry.seq, _hashes(store.log, head.tree_size))
        return entry, head, proof

    def consistency(
        self, first: int, second: int
    ) -> tuple[TreeHeadRecord, TreeHeadRecord, list[bytes]]:
        if not 0 < first <= second:
            raise InvalidArgument("first_tree_size", "between 1 and second_tree_size")
        old, new = self.head(first), self.head(second)
        with self._stores.read() as store:
            proof = log.consistency_proof(first, _hashes(store.log, second))
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
