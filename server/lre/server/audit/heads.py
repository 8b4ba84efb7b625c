"""verify-log, pass 1: the log in index order and its tree heads.

Indices contiguous; every leaf hashed into an RFC 9162 compact range
(``log.MerkleRange``), whose root at each sealed head's size must be that
head's root. Since every head is recomputed from the same leaves, each one is
consistent with the one before. Heads are numbered without gaps, name their
predecessor, and their seals verify; with ``against``, every head published
outside the database is still in it and still matches the log (a truncated
tail or a rolled-back database does not)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, select

from lre.server.audit.reading import Report, json_object, stream
from lre.server.audit.seals import SealChecker
from lre.server.domain import log
from lre.server.storage import models

# Missing entries hashed as placeholders to go on checking the heads above them.
MAX_GAP = 1_000_000

E = models.LogEntry.__table__
H = models.TreeHead.__table__


def check(
    connection: Connection,
    report: Report,
    seals: SealChecker | None,
    published: list[log.PublishedHead],
) -> None:
    heads = stream(
        connection,
        select(H.c.number, H.c.tree_size, H.c.root_hash, H.c.document, H.c.seal).order_by(
            H.c.tree_size
        ),
    )
    tree = log.MerkleRange()
    state = _HeadChain(report, seals, published)
    head = next(heads, None)
    leaves = stream(
        connection,
        select(E.c.seq, E.c.leaf).where(E.c.seq.is_not(None)).order_by(E.c.seq),
    )
    for row in leaves:
        seq, leaf = row.seq, row.leaf
        while head is not None and head.tree_size <= tree.size:
            state.check(head, tree)
            head = next(heads, None)
        state.published_up_to(tree)
        if seq != tree.size:
            if seq < tree.size:  # cannot happen with a unique index, unless it was dropped
                report.add(f"entry {seq}: its index is used twice")
                continue
            missing = f"{tree.size}" if seq == tree.size + 1 else f"{tree.size} to {seq - 1}"
            report.add(f"entry {missing} is missing (deleted)")
            if seq - tree.size > MAX_GAP:  # an index rewritten far ahead: stop there
                break
            # Keep hashing what is there: every head above the gap is then named too.
            while tree.size < seq:
                tree.append(b"\0" * 32)
        tree.append(log.leaf_hash(leaf if isinstance(leaf, bytes) else b""))
        report.entries = tree.size
        report.tick("log")
    report.entries = tree.size
    while head is not None:
        state.check(head, tree)
        head = next(heads, None)
    state.published_up_to(tree, final=True)
    state.finish(tree)
    tail = tree.size - state.last_size
    if tail > 0:
        report.notes.append(
            f"{tail} entries after the last sealed head: only the database vouches for them "
            "until the next head (tree_head_interval_s)"
        )


class _HeadChain:
    def __init__(
        self, report: Report, seals: SealChecker | None, published: list[log.PublishedHead]
    ) -> None:
        self._report = report
        self._seals = seals
        self._published = published
        self._next_published = 0
        # Published heads by number, to find the database's head of that number.
        self._by_number = {h.number: h for h in published}
        self._seen_numbers: set[int] = set()
        self._previous: tuple[int, int, bytes] | None = None  # number, size, root

    @property
    def last_size(self) -> int:
        return self._previous[1] if self._previous else 0

    def check(self, head: Row[Any], tree: log.MerkleRange) -> None:
        report = self._report
        report.heads += 1
        name = f"tree head {head.number} (size {head.tree_size})"
        if head.tree_size > tree.size:
            report.add(f"{name}: the log is shorter (entries deleted)")
        elif tree.root() != head.root_hash:
            report.add(
                f"{name}: the log no longer hashes to its root (an entry below "
                f"{head.tree_size} was changed, deleted or reordered)"
            )
        expected = 1 if self._previous is None else self._previous[0] + 1
        if head.number > expected:
            gap = (
                f"{expected}" if head.number == expected + 1 else f"{expected} to {head.number - 1}"
            )
            report.add(f"tree head {gap} is missing (deleted)")
        elif head.number < expected:
            report.add(f"{name}: numbered out of order (after head {expected - 1})")
        self._document(head, name)
        if self._seals is not None:
            why = self._seals.problem(head.seal, head.document)
            if why:
                report.add(f"{name}: its seal {why}")
        published = self._by_number.get(head.number)
        if published is not None and (
            published.tree_size != head.tree_size or published.root_hash != head.root_hash
        ):
            report.add(f"{name}: differs from the published head {head.number} (rewritten)")
        self._seen_numbers.add(head.number)
        self._previous = (head.number, head.tree_size, head.root_hash)

    def _document(self, head: Row[Any], name: str) -> None:
        document = json_object(head.document)
        if document is None:
            self._report.add(f"{name}: its document is not a JSON object (changed)")
            return
        fields = {"treeSize": head.tree_size, "rootHash": head.root_hash.hex()}
        if document.get("format") == "lre-tree-head/2":
            fields["number"] = head.number
            if self._previous is not None:
                fields["previousTreeSize"] = self._previous[1]
                fields["previousRootHash"] = self._previous[2].hex()
        elif document.get("format") != "lre-tree-head/1":
            self._report.add(f"{name}: its document has an unknown format (changed)")
            return
        wrong = sorted(k for k, v in fields.items() if document.get(k) != v)
        if wrong:
            self._report.add(
                f"{name}: its document does not match ({', '.join(wrong)}): "
                "a head before it was deleted, or it was changed"
            )

    def published_up_to(self, tree: log.MerkleRange, final: bool = False) -> None:
        """Published heads of the current size match the log; at the end, the
        ones beyond it name a truncated log."""
        while self._next_published < len(self._published):
            head = self._published[self._next_published]
            if head.tree_size > tree.size and not final:
                return
            self._next_published += 1
            name = f"published tree head {head.number} (size {head.tree_size})"
            if head.tree_size > tree.size:
                self._report.add(
                    f"{name}: the log has only {tree.size} entries "
                    "(its tail was truncated or the database rolled back)"
                )
            elif head.tree_size == tree.size and tree.root() != head.root_hash:
                self._report.add(f"{name}: the log no longer hashes to its root")
            if self._seals is not None:
                why = self._seals.problem(head.seal, head.document)
                if why:
                    self._report.add(f"{name}: its seal {why}")

    def finish(self, tree: log.MerkleRange) -> None:
        for head in self._published:
            if head.number not in self._seen_numbers:
                self._report.add(
                    f"published tree head {head.number} (size {head.tree_size}) is not in "
                    "the database (deleted, or the database rolled back)"
                )
