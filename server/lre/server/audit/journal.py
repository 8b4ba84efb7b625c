"""`verify-log` on the security journal: the log's entries that name no
letter (consents, professional declarations, proofing, credentials,
sessions, operators' acts, the processes and the signer).

Their hashes are in the Merkle tree like every entry's (pass 1), so a
journal row changed, deleted, reordered or inserted below a sealed head
breaks that head's root. This module names the entry: each leaf is compared
with the leaf hash stored when the head covering it was sealed (tree_nodes,
level 0), so an entry changed, moved or inserted after sealing is named by
its index; and each journal leaf must be one the service writes: a known
kind, exactly its kind's fields (no personal data slipped in), the row's time.
Each proofing decision journaled must still be its ``identity_records`` row
(the SHA-256 of the record, ``recordSha256``); identity records proofed since
the journal began that no entry names are counted (inserted behind the
journal; records older than the first journaled proofing predate the journal).
Likewise each name correction journaled must still be its ``party_corrections``
row (the digests of its sealed document and seal, and the names that document
states), and a correction no entry names was inserted behind the journal:
``verify-log`` reads earlier evidence against those former names, so they
must be the ones the service recorded.

A party's personal data erased by the service (a ``party_erased`` entry)
leaves its identity records without details or salt: they are counted as
erased, not named as changed; a party or record marked erased that no such
entry covers was erased outside the service and is named.

An entry appended after the last sealed head is vouched for only by the
database until the next head (tree_head_interval_s): no check can tell an
insider's journal entry appended there from the service's."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Connection, func, select

from lre.server.audit.reading import Report, json_object, stream
from lre.server.audit.seals import SealChecker
from lre.server.domain import journal, log
from lre.server.domain.evidence import _utc
from lre.server.domain.identity import IdentityRecord
from lre.server.storage import models, records

E = models.LogEntry.__table__
N = models.TreeNode.__table__
R = models.IdentityRecord.__table__
C = models.PartyCorrection.__table__
P = models.Party.__table__


def leaf_problems(leaf: dict[str, Any]) -> list[str]:
    """What makes a journal leaf (one with a ``kind``) not one the service writes."""
    try:
        kind = log.LogKind(leaf.get("kind"))
    except ValueError:
        return [f"an unknown kind {str(leaf.get('kind'))[:40]!r}"]
    wrong = journal.problems(kind, leaf)
    if leaf.get("format") not in log.FORMATS or not isinstance(leaf.get("subject"), str):
        wrong.append("not in the log's format")
    return [f"a {kind.value} entry that {w}" for w in wrong]


def check(connection: Connection, report: Report, _: SealChecker | None, __: Any) -> None:
    """The journal pass of verify-log."""
    _sealed_leaves(connection, report)
    _journal_entries(connection, report)


def _sealed_leaves(connection: Connection, report: Report) -> None:
    """Every sequenced leaf still hashes to the leaf hash stored when it was sealed."""
    rows = stream(
        connection,
        select(E.c.seq, E.c.leaf, N.c.hash)
        .join(N, (N.c.level == 0) & (N.c.position == E.c.seq))
        .order_by(E.c.seq),
    )
    for row in rows:
        leaf = row.leaf
        if log.leaf_hash(leaf if isinstance(leaf, bytes) else b"") != row.hash:
            report.add(
                f"entry {row.seq}: not the entry sealed at this index "
                "(changed, moved or inserted after its tree head was sealed)"
            )


def _journal_entries(connection: Connection, report: Report) -> None:
    rows = stream(
        connection,
        select(E.c.seq, E.c.event_time, E.c.leaf, E.c.evidence_id, E.c.state)
        .where(E.c.letter_id.is_(None))
        .order_by(E.c.seq),
    )
    proofed = _Proofings(connection, report)
    corrected = _Corrections(connection, report)
    erased: set[str] = set()
    for entry in rows:
        where = f"entry {entry.seq}" if entry.seq is not None else "an unsequenced journal entry"
        leaf = json_object(entry.leaf)
        if leaf is None:
            report.add(f"{where}: its leaf is not a JSON object (malformed or changed)")
            continue
        if not isinstance(leaf.get("kind"), str):
            report.add(f"{where}: names no letter and is not a journal entry (changed)")
            continue
        report.journal += 1
        report.tick("journal")
        for problem in leaf_problems(leaf):
            report.add(f"{where}: {problem} (changed)")
        if (
            leaf.get("eventTime") != _utc(entry.event_time)
            or entry.evidence_id is not None
            or entry.state is not None
        ):
            report.add(f"{where}: the row no longer says what its leaf says (changed)")
        if leaf["kind"] == log.LogKind.IDENTITY_PROOFED.value:
            proofed.check(where, leaf)
        if leaf["kind"] == log.LogKind.PARTY_CORRECTED.value:
            corrected.check(where, leaf)
        if leaf["kind"] == log.LogKind.PARTY_ERASED.value:
            erased.add(str(leaf.get("subject")))
    proofed.finish(erased)
    corrected.finish()
    _erased_parties(connection, report, erased)


def _erased_parties(connection: Connection, report: Report, journaled: set[str]) -> None:
    """A party's data erased is the journal's word: a row erased without an
    entry was erased (or its proofs hidden) outside the service."""
    rows = connection.execute(select(P.c.id).where(P.c.erase_time.is_not(None)))
    for (party_id,) in rows:
        if f"parties/{party_id}" in journaled:
            report.erased += 1
        else:
            report.add(
                f"party {party_id}: marked erased without a journal entry "
                "(erased outside the service)"
            )


class _Corrections:
    """Journaled name corrections against the party_corrections rows."""

    def __init__(self, connection: Connection, report: Report) -> None:
        self._connection = connection
        self._report = report
        self._matched = 0

    def check(self, where: str, leaf: dict[str, Any]) -> None:
        name = str(leaf.get("correction"))
        try:
            correction_id = uuid.UUID(name.rsplit("/", 1)[-1])
        except ValueError:
            self._report.add(f"{where}: names no correction (changed)")
            return
        row = self._connection.execute(select(C).where(C.c.id == correction_id)).one_or_none()
        if row is None:
            self._report.add(f"correction {name} ({where}): is missing (deleted)")
            return
        stated = json_object(row.document) or {}
        if (
            log.sha256_hex(row.document) != leaf.get("documentSha256")
            or log.sha256_hex(row.seal) != leaf.get("sealSha256")
            or f"parties/{row.party_id}" != leaf.get("subject")
            or stated.get("before") != row.before
            or stated.get("after") != row.after
        ):
            self._report.add(
                f"correction {name} ({where}): is not the correction journaled (changed)"
            )
            return
        self._matched += 1

    def finish(self) -> None:
        count = self._connection.scalar(select(func.count()).select_from(C))
        if count is not None and count > self._matched:
            self._report.add(
                f"{count - self._matched} name corrections have no journal entry "
                "(inserted outside the service)"
            )


class _Proofings:
    """Journaled proofing decisions against the identity_records rows."""

    def __init__(self, connection: Connection, report: Report) -> None:
        self._connection = connection
        self._report = report
        self._matched = 0
        self._first: dt.datetime | None = None
        # Erased records (where, party): the erasure entry may come later.
        self._erased: list[tuple[str, str, str]] = []

    def check(self, where: str, leaf: dict[str, Any]) -> None:
        name = leaf.get("record")
        try:
            record_id = uuid.UUID(str(name).rsplit("/", 1)[-1])
        except ValueError:
            self._report.add(f"{where}: names no identity record (changed)")
            return
        row = self._connection.execute(select(R).where(R.c.id == record_id)).one_or_none()
        if row is None:
            self._report.add(f"identity record {name} ({where}): is missing (deleted)")
            return
        record = records.from_row(IdentityRecord, row)
        if record.erase_time is not None and f"parties/{record.party_id}" == leaf.get("subject"):
            # Its details and salt are gone: nothing left to check the digest against.
            self._erased.append((where, str(name), f"parties/{record.party_id}"))
            self._matched += 1
            return
        digest = (
            journal.identity_record_salted_digest(record)
            if leaf.get("format") == log.FORMAT_V2
            else journal.identity_record_digest(record)
        )
        stated = leaf.get("recordSaltedSha256", leaf.get("recordSha256"))
        if digest != stated or f"parties/{record.party_id}" != leaf.get("subject"):
            self._report.add(
                f"identity record {name} ({where}): is not the record journaled (changed)"
            )
            return
        self._matched += 1
        if self._first is None or record.proof_time < self._first:
            self._first = record.proof_time

    def finish(self, erased: set[str]) -> None:
        for where, name, party in self._erased:
            if party not in erased:
                self._report.add(
                    f"identity record {name} ({where}): erased without a journal entry "
                    "(changed outside the service)"
                )
        if self._first is None:
            return
        count = self._connection.scalar(
            select(func.count()).select_from(R).where(R.c.proof_time >= self._first)
        )
        if count is not None and count > self._matched:
            self._report.add(
                f"{count - self._matched} identity records proofed since the journal began "
                "have no journal entry (inserted outside the service)"
            )
